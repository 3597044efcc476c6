//! Payment QR codes for a registration's credit account, as the operator console draws them:
//! the Swiss QR bill's payment part (Swiss Implementation Guidelines for the QR-bill, v2.x) and
//! the EPC QR code ("GiroCode", EPC069-12 version 002) that European banking apps scan.
//!
//! Pure: payloads and SVG are built from values, nothing is read or written.
//!
//! Both payloads separate their elements with a single LF (`\n`) and end on their last element
//! with no separator after it. Both standards allow LF or CR LF; LF gives the shorter payload
//! and so the coarser, easier-to-scan QR code, and every reader of the current versions of the
//! standards (Swiss v2.0 and later, EPC 002) must accept it.

use std::fmt::Write as _;

use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};
use thiserror::Error;

use crate::amount::{Amount, FRACTION_BASE};
use crate::payto::Payto;
use crate::subject::{group_qr_reference, qr_reference_valid};

/// Separator between payload elements (see the module documentation for why LF).
pub const LINE_SEPARATOR: &str = "\n";

/// Number of elements of a Swiss QR code payload without the optional billing information and
/// alternative procedures, which taler-lite never sends: the trailer `EPD` is element 31.
pub const SWISS_PAYLOAD_LINES: usize = 31;

/// Number of elements of an EPC payload up to the unstructured remittance text, where it stops
/// (the optional beneficiary-to-originator information, element 12, is left out).
pub const EPC_PAYLOAD_LINES: usize = 11;

/// Modules of light margin around a code (ISO/IEC 18004 asks for four).
pub const QUIET_ZONE: usize = 4;

/// Printed size of the Swiss QR code itself, without its quiet zone, as the Swiss guidelines fix it.
pub const SWISS_CODE_MM: f64 = 46.0;

// Highest QR version each standard permits at level M (Swiss: 997 bytes; EPC: 331 bytes).
const SWISS_MAX_VERSION: i16 = 25;
const EPC_MAX_VERSION: i16 = 13;

// Field limits of the Swiss guidelines (characters).
const SWISS_NAME_MAX: usize = 70;
const SWISS_STREET_MAX: usize = 70;
const SWISS_BUILDING_MAX: usize = 16;
const SWISS_POSTCODE_MAX: usize = 16;
const SWISS_TOWN_MAX: usize = 35;
// EPC069-12 limits (characters).
const EPC_NAME_MAX: usize = 70;
const EPC_TEXT_MAX: usize = 140;
// Both standards: 0.01 to 999 999 999.99.
const MAX_WHOLE_UNITS: u64 = 999_999_999;

/// Why a payment code cannot be drawn for an account.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QrBillError {
    /// The credit account is not an `iban` payto URI.
    #[error("the credit account is not an IBAN account")]
    NotIban,
    /// A Swiss QR bill with a QR reference needs a QR-IBAN.
    #[error("the credit account {0} is not a QR-IBAN (CH or LI, institution id 30000-31999)")]
    NotQrIban(String),
    /// The account has no `receiver-name`.
    #[error("the credit account has no receiver-name")]
    MissingName,
    /// A text field is empty, too long or holds a character the standard does not allow.
    #[error("{field} {problem}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The reference is not 27 digits with a valid check digit.
    #[error("{0:?} is not a QR reference (27 digits, modulo 10 recursive check digit)")]
    InvalidReference(String),
    /// Payment codes carry amounts in hundredths.
    #[error("the amount {0} has more than two decimals")]
    AmountPrecision(String),
    /// Outside 0.01 to 999 999 999.99.
    #[error("the amount {0} is outside 0.01 to 999999999.99")]
    AmountRange(String),
    /// The payload does not fit the largest QR version the standard permits.
    #[error("the payload does not fit a QR code of version {0} or lower")]
    TooLong(i16),
}

/// The two currencies QR bills exist in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrCurrency {
    /// Swiss francs.
    Chf,
    /// Euros.
    Eur,
}

impl QrCurrency {
    /// The ISO 4217 code as the payload writes it.
    pub fn code(self) -> &'static str {
        match self {
            QrCurrency::Chf => "CHF",
            QrCurrency::Eur => "EUR",
        }
    }
}

/// The creditor's postal address for a structured (`S`) address; the name comes from the
/// account's `receiver-name` and the country from its IBAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditorAddress {
    /// Street, may be empty.
    pub street: String,
    /// Building number, may be empty.
    pub building_number: String,
    /// Postcode, required.
    pub postcode: String,
    /// Town, required.
    pub town: String,
}

impl CreditorAddress {
    /// An address of postcode and town only, as the settings `qr_creditor_postcode` and
    /// `qr_creditor_town` give it.
    pub fn new(postcode: &str, town: &str) -> Self {
        CreditorAddress {
            street: String::new(),
            building_number: String::new(),
            postcode: postcode.to_owned(),
            town: town.to_owned(),
        }
    }
}

/// A validated Swiss QR bill payment part: what the Swiss QR code holds and what the
/// human-readable part beside it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwissQrBill {
    iban: String,
    name: String,
    address: CreditorAddress,
    country: String,
    amount: Option<String>,
    currency: QrCurrency,
    reference: String,
}

impl SwissQrBill {
    /// A bill to pay `amount` to `account` (a QR-IBAN payto with a `receiver-name`) with the QR
    /// reference `reference` (27 digits).
    ///
    /// An amount in a currency other than CHF or EUR gives a *specimen*: a CHF bill without an
    /// amount, for testing (see [`SwissQrBill::is_specimen`]).
    pub fn new(
        account: &Payto,
        address: &CreditorAddress,
        amount: &Amount,
        reference: &str,
    ) -> Result<Self, QrBillError> {
        let iban = account.iban().ok_or(QrBillError::NotIban)?;
        if !account.is_qr_iban() {
            return Err(QrBillError::NotQrIban(iban.to_owned()));
        }
        let name = account.receiver_name().ok_or(QrBillError::MissingName)?;
        swiss_text("creditor name", &name, SWISS_NAME_MAX, true)?;
        swiss_text("creditor street", &address.street, SWISS_STREET_MAX, false)?;
        swiss_text("creditor building number", &address.building_number, SWISS_BUILDING_MAX, false)?;
        swiss_text("creditor postcode", &address.postcode, SWISS_POSTCODE_MAX, true)?;
        swiss_text("creditor town", &address.town, SWISS_TOWN_MAX, true)?;
        if !qr_reference_valid(reference) {
            return Err(QrBillError::InvalidReference(reference.to_owned()));
        }
        let (amount, currency) = match amount.currency() {
            "CHF" => (Some(hundredths(amount)?), QrCurrency::Chf),
            "EUR" => (Some(hundredths(amount)?), QrCurrency::Eur),
            _ => (None, QrCurrency::Chf),
        };
        Ok(SwissQrBill {
            iban: iban.to_owned(),
            name,
            address: address.clone(),
            // A validated IBAN starts with its two-letter country code.
            country: iban.get(..2).unwrap_or_default().to_owned(),
            amount,
            currency,
            reference: reference.to_owned(),
        })
    }

    /// The Swiss QR code payload, element by element as the Swiss guidelines list them.
    pub fn payload(&self) -> String {
        let a = &self.address;
        let mut lines: Vec<&str> = Vec::with_capacity(SWISS_PAYLOAD_LINES);
        // Header: QRType, Version, Coding (1 = UTF-8 restricted to the Latin character set).
        lines.extend(["SPC", "0200", "1"]);
        // CdtrInf: the account, then the creditor as a structured address.
        lines.push(&self.iban);
        lines.extend(["S", &self.name, &a.street, &a.building_number, &a.postcode, &a.town, &self.country]);
        // UltmtCdtr: reserved for future use, must stay empty (7 elements).
        lines.extend([""; 7]);
        // CcyAmt: an empty amount lets the payer enter it.
        lines.push(self.amount.as_deref().unwrap_or_default());
        lines.push(self.currency.code());
        // UltmtDbtr: the payer is not known when the bill is drawn (7 elements).
        lines.extend([""; 7]);
        // RmtInf: the QR reference, no message; then the trailer.
        lines.extend(["QRR", &self.reference, "", "EPD"]);
        lines.join(LINE_SEPARATOR)
    }

    /// The Swiss QR code as SVG: level M, the Swiss cross in the middle, a quiet zone around.
    pub fn svg(&self) -> Result<String, QrBillError> {
        let matrix = QrMatrix::encode(&self.payload(), SWISS_MAX_VERSION)?;
        Ok(matrix.svg(true, "Swiss QR code"))
    }

    /// Whether the bill is a specimen (no amount, because the registration's currency has no
    /// QR bill); the console marks it plainly as one.
    pub fn is_specimen(&self) -> bool {
        self.amount.is_none()
    }

    /// "Account / Payable to": the IBAN in blocks of four, as printed on the bill.
    pub fn account_display(&self) -> String {
        blocks_of_four(&self.iban)
    }

    /// The creditor's name.
    pub fn creditor_name(&self) -> &str {
        &self.name
    }

    /// The creditor's address as printed: street line (if any), then `CC-POSTCODE TOWN`.
    pub fn address_lines(&self) -> Vec<String> {
        let a = &self.address;
        let street = format!("{} {}", a.street, a.building_number).trim().to_owned();
        let town = format!("{}-{} {}", self.country, a.postcode, a.town);
        if street.is_empty() { vec![town] } else { vec![street, town] }
    }

    /// The reference in blocks of five, counted from the right, as printed on the bill.
    pub fn reference_display(&self) -> String {
        group_qr_reference(&self.reference)
    }

    /// The currency.
    pub fn currency(&self) -> QrCurrency {
        self.currency
    }

    /// The amount as printed (`1 234.50`: space between thousands), none for a specimen.
    pub fn amount_display(&self) -> Option<String> {
        self.amount.as_deref().map(group_thousands)
    }
}

/// A validated EPC QR code (SEPA credit transfer, EPC069-12 version 002).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpcQrCode {
    bic: Option<String>,
    name: String,
    iban: String,
    amount: Option<String>,
    text: String,
}

impl EpcQrCode {
    /// A transfer of `amount` to `account` (an IBAN payto with a `receiver-name`, and a BIC if
    /// it has one) with `remittance_text` (the SIMPLE subject) as unstructured remittance.
    ///
    /// An amount not in EUR gives a *specimen* without an amount, for testing.
    pub fn new(account: &Payto, amount: &Amount, remittance_text: &str) -> Result<Self, QrBillError> {
        let iban = account.iban().ok_or(QrBillError::NotIban)?;
        let name = account.receiver_name().ok_or(QrBillError::MissingName)?;
        epc_text("beneficiary name", &name, EPC_NAME_MAX)?;
        epc_text("remittance text", remittance_text, EPC_TEXT_MAX)?;
        let amount = match amount.currency() {
            "EUR" => Some(format!("EUR{}", hundredths(amount)?)),
            _ => None,
        };
        Ok(EpcQrCode {
            bic: payto_bic(account).map(str::to_owned),
            name,
            iban: iban.to_owned(),
            amount,
            text: remittance_text.to_owned(),
        })
    }

    /// The EPC payload, element by element as EPC069-12 lists them, up to the unstructured
    /// remittance text.
    pub fn payload(&self) -> String {
        [
            "BCD", // Service tag.
            "002", // Version: the BIC may be left out within the EEA.
            "1",   // Character set: UTF-8.
            "SCT", // Identification: SEPA credit transfer.
            self.bic.as_deref().unwrap_or_default(),
            &self.name,
            &self.iban,
            self.amount.as_deref().unwrap_or_default(),
            "", // Purpose code.
            "", // Structured remittance (creditor reference): one or the other, not both.
            &self.text,
        ]
        .join(LINE_SEPARATOR)
    }

    /// The EPC QR code as SVG: level M (as EPC069-12 asks), a quiet zone around.
    pub fn svg(&self) -> Result<String, QrBillError> {
        let matrix = QrMatrix::encode(&self.payload(), EPC_MAX_VERSION)?;
        Ok(matrix.svg(false, "EPC QR code"))
    }

    /// Whether the code is a specimen (no amount, because the registration's currency is not
    /// EUR); the console marks it plainly as one.
    pub fn is_specimen(&self) -> bool {
        self.amount.is_none()
    }

    /// The IBAN in blocks of four.
    pub fn account_display(&self) -> String {
        blocks_of_four(&self.iban)
    }

    /// The beneficiary's name.
    pub fn beneficiary_name(&self) -> &str {
        &self.name
    }

    /// The BIC, if the account names one.
    pub fn bic(&self) -> Option<&str> {
        self.bic.as_deref()
    }

    /// The amount as written in the payload (`EUR12.50`), none for a specimen.
    pub fn amount(&self) -> Option<&str> {
        self.amount.as_deref()
    }
}

/// The BIC of a `payto://iban/BIC/IBAN` URI (the `Payto` type keeps only the IBAN).
pub fn payto_bic(account: &Payto) -> Option<&str> {
    account.iban()?;
    let full = account.full();
    // "payto://" and the method were validated by the parser; the path runs to the query.
    let path = full.get("payto://".len()..)?.split('?').next()?;
    let mut segments = path.split('/').skip(1);
    match (segments.next(), segments.next()) {
        (Some(bic), Some(_iban)) => Some(bic),
        _ => None,
    }
}

/// An amount in hundredths (`12.50`) within both standards' range, or why not.
fn hundredths(amount: &Amount) -> Result<String, QrBillError> {
    const PER_CENT: u32 = FRACTION_BASE / 100;
    if !amount.fraction().is_multiple_of(PER_CENT) {
        return Err(QrBillError::AmountPrecision(amount.to_string()));
    }
    if amount.is_zero() || amount.value() > MAX_WHOLE_UNITS {
        return Err(QrBillError::AmountRange(amount.to_string()));
    }
    Ok(format!("{}.{:02}", amount.value(), amount.fraction() / PER_CENT))
}

/// Checks a Swiss text field: length in characters and the Latin character set the guidelines
/// permit; a line break would shift every later element.
fn swiss_text(field: &'static str, value: &str, max: usize, required: bool) -> Result<(), QrBillError> {
    check_text(field, value, max, required, swiss_char)
}

fn swiss_char(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{17f}' | '\u{218}'..='\u{21b}' | '\u{20ac}')
}

/// Checks an EPC text field: UTF-8 is allowed (coding 1), control characters are not.
fn epc_text(field: &'static str, value: &str, max: usize) -> Result<(), QrBillError> {
    check_text(field, value, max, true, |c| !c.is_control())
}

fn check_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
    allowed: fn(char) -> bool,
) -> Result<(), QrBillError> {
    let problem = if required && value.trim().is_empty() {
        "is empty".to_owned()
    } else if value.chars().count() > max {
        format!("has more than {max} characters")
    } else if let Some(c) = value.chars().find(|&c| !allowed(c)) {
        format!("holds the character {c:?}, which the standard does not allow")
    } else {
        return Ok(());
    };
    Err(QrBillError::Field { field, problem })
}

fn blocks_of_four(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ")
}

/// `1234567.50` -> `1 234 567.50`.
fn group_thousands(amount: &str) -> String {
    let (whole, cents) = amount.split_once('.').unwrap_or((amount, ""));
    let mut grouped = String::with_capacity(amount.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    if cents.is_empty() { grouped } else { format!("{grouped}.{cents}") }
}

/// An axis-aligned rectangle in module units, the quiet zone included.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    dark: bool,
}

impl Rect {
    fn centred(c: f64, side_w: f64, side_h: f64, dark: bool) -> Rect {
        Rect { x: c - side_w / 2.0, y: c - side_h / 2.0, w: side_w, h: side_h, dark }
    }
}

/// The module matrix of one QR code.
#[derive(Debug, Clone)]
struct QrMatrix {
    width: usize,
    dark: Vec<bool>,
}

impl QrMatrix {
    /// Encodes `payload` at level M in one byte-mode segment, in the smallest version that
    /// holds it, up to `max_version`. One byte segment (no mode mixing, no ECI) is the plain
    /// form both standards describe, so even a strict reader needs nothing more.
    fn encode(payload: &str, max_version: i16) -> Result<QrMatrix, QrBillError> {
        for version in 1..=max_version {
            let mut bits = Bits::new(Version::Normal(version));
            if bits.push_byte_data(payload.as_bytes()).is_err() || bits.push_terminator(EcLevel::M).is_err() {
                continue;
            }
            let code = QrCode::with_bits(bits, EcLevel::M).map_err(|_| QrBillError::TooLong(max_version))?;
            return Ok(QrMatrix {
                width: code.width(),
                dark: code.to_colors().into_iter().map(|c| c == Color::Dark).collect(),
            });
        }
        Err(QrBillError::TooLong(max_version))
    }

    /// Side of the drawing in modules, quiet zone included.
    fn side(&self) -> usize {
        self.width + 2 * QUIET_ZONE
    }

    /// Dark runs of modules, one rectangle per run in a row, offset by the quiet zone.
    fn module_runs(&self) -> Vec<Rect> {
        let mut runs = Vec::new();
        for (y, row) in self.dark.chunks(self.width).enumerate() {
            let mut x = 0;
            while x < row.len() {
                if !row[x] {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < row.len() && row[x] {
                    x += 1;
                }
                runs.push(Rect {
                    x: (QUIET_ZONE + start) as f64,
                    y: (QUIET_ZONE + y) as f64,
                    w: (x - start) as f64,
                    h: 1.0,
                    dark: true,
                });
            }
        }
        runs
    }

    /// The Swiss cross drawn over the code's centre, painted in order: a 7 mm white square
    /// (the border), a 6 mm black square, the white cross. The proportions follow the cross
    /// graphic SIX publishes for the QR bill as QR bill generators draw it (arms 7/6 mm wide and
    /// 35/9 mm long: the federal cross, whose arms are a sixth longer than wide), scaled to the
    /// code's 46 mm.
    fn swiss_cross(&self) -> [Rect; 4] {
        let mm = self.width as f64 / SWISS_CODE_MM;
        let c = self.side() as f64 / 2.0;
        let (bar_w, bar_l) = (7.0 / 6.0 * mm, 35.0 / 9.0 * mm);
        [
            Rect::centred(c, 7.0 * mm, 7.0 * mm, false),
            Rect::centred(c, 6.0 * mm, 6.0 * mm, true),
            Rect::centred(c, bar_w, bar_l, false),
            Rect::centred(c, bar_l, bar_w, false),
        ]
    }

    /// The SVG: one unit per module, sized so that the code itself (without quiet zone) is the
    /// Swiss standard's 46 mm; CSS may scale it.
    fn svg(&self, swiss_cross: bool, label: &str) -> String {
        let side = self.side();
        let printed_mm = SWISS_CODE_MM * side as f64 / self.width as f64;
        let mut svg = String::with_capacity(64 * side);
        // `write!` to a String cannot fail.
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" width="{w}mm" height="{w}mm" shape-rendering="crispEdges" role="img" aria-label="{label}"><rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d=""##,
            w = num(printed_mm),
        );
        for r in self.module_runs() {
            let _ = write!(svg, "M{} {}h{}v1h-{}z", num(r.x), num(r.y), num(r.w), num(r.w));
        }
        svg.push_str(r#""/>"#);
        let cross = if swiss_cross { self.swiss_cross().to_vec() } else { Vec::new() };
        for r in cross {
            let _ = write!(
                svg,
                r##"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>"##,
                num(r.x),
                num(r.y),
                num(r.w),
                num(r.h),
                if r.dark { "#000" } else { "#fff" }
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// A coordinate with at most four decimals and no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const QR_IBAN: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
    const REFERENCE: &str = "210000000003139471430009017";

    fn zurich() -> CreditorAddress {
        CreditorAddress::new("8000", "Zürich")
    }

    fn bill(payto: &str, amount: &str) -> SwissQrBill {
        SwissQrBill::new(&Payto::parse(payto).unwrap(), &zurich(), &Amount::parse(amount).unwrap(), REFERENCE)
            .unwrap()
    }

    /// Renders the drawing as the tests' raster: `scale` pixels per module, shapes painted in
    /// order, each over the pixels whose centres it covers.
    fn raster(matrix: &QrMatrix, swiss_cross: bool, scale: u32) -> image::GrayImage {
        let side = matrix.side() as u32 * scale;
        let mut img = image::GrayImage::from_pixel(side, side, image::Luma([255]));
        let s = f64::from(scale);
        // First and last pixel whose centre lies in [a, a + len).
        let span =
            |a: f64, len: f64| ((a * s - 0.5).ceil().max(0.0) as u32, ((a + len) * s - 0.5).ceil() as u32);
        // What `svg` draws over its light background, in the same order.
        let mut shapes = matrix.module_runs();
        if swiss_cross {
            shapes.extend(matrix.swiss_cross());
        }
        for r in shapes {
            let ((x0, x1), (y0, y1)) = (span(r.x, r.w), span(r.y, r.h));
            for y in y0..y1.min(side) {
                for x in x0..x1.min(side) {
                    img.put_pixel(x, y, image::Luma([if r.dark { 0 } else { 255 }]));
                }
            }
        }
        img
    }

    fn decode_all(img: image::GrayImage) -> Vec<String> {
        let mut prepared = rqrr::PreparedImage::prepare(img);
        prepared.detect_grids().iter().map(|g| g.decode().unwrap().1).collect()
    }

    #[test]
    fn swiss_payload_element_by_element() {
        let b = bill(QR_IBAN, "CHF:1949.75");
        let payload = b.payload();
        assert!(!payload.contains('\r'), "LF only");
        assert!(payload.ends_with("\nEPD"), "no separator after the trailer");
        let lines: Vec<&str> = payload.split('\n').collect();
        assert_eq!(lines.len(), SWISS_PAYLOAD_LINES);
        let expected: [(&str, &str); SWISS_PAYLOAD_LINES] = [
            ("QRType", "SPC"),
            ("Version", "0200"),
            ("Coding", "1"),
            ("CdtrInf IBAN", "CH4431999123000889012"),
            ("Cdtr AdrTp", "S"),
            ("Cdtr Name", "Exchange"),
            ("Cdtr StrtNmOrAdrLine1", ""),
            ("Cdtr BldgNbOrAdrLine2", ""),
            ("Cdtr PstCd", "8000"),
            ("Cdtr TwnNm", "Zürich"),
            ("Cdtr Ctry", "CH"),
            ("UltmtCdtr AdrTp", ""),
            ("UltmtCdtr Name", ""),
            ("UltmtCdtr StrtNmOrAdrLine1", ""),
            ("UltmtCdtr BldgNbOrAdrLine2", ""),
            ("UltmtCdtr PstCd", ""),
            ("UltmtCdtr TwnNm", ""),
            ("UltmtCdtr Ctry", ""),
            ("CcyAmt Amt", "1949.75"),
            ("CcyAmt Ccy", "CHF"),
            ("UltmtDbtr AdrTp", ""),
            ("UltmtDbtr Name", ""),
            ("UltmtDbtr StrtNmOrAdrLine1", ""),
            ("UltmtDbtr BldgNbOrAdrLine2", ""),
            ("UltmtDbtr PstCd", ""),
            ("UltmtDbtr TwnNm", ""),
            ("UltmtDbtr Ctry", ""),
            ("RmtInf Tp", "QRR"),
            ("RmtInf Ref", REFERENCE),
            ("RmtInf AddInf Ustrd", ""),
            ("RmtInf AddInf Trailer", "EPD"),
        ];
        for (i, ((field, want), got)) in expected.iter().zip(&lines).enumerate() {
            assert_eq!(got, want, "element {} ({field})", i + 1);
        }
        assert!(!b.is_specimen());
        assert_eq!(b.currency(), QrCurrency::Chf);
    }

    #[test]
    fn swiss_street_euro_and_liechtenstein() {
        let address = CreditorAddress {
            street: "Musterstrasse".into(),
            building_number: "7a".into(),
            postcode: "9490".into(),
            town: "Vaduz".into(),
        };
        let p = Payto::parse("payto://iban/LI8730000000012345678?receiver-name=Bank%20AG").unwrap();
        assert!(p.is_qr_iban(), "test account must be a QR-IBAN");
        let b = SwissQrBill::new(&p, &address, &Amount::parse("EUR:0.5").unwrap(), REFERENCE).unwrap();
        let lines: Vec<String> = b.payload().split('\n').map(str::to_owned).collect();
        assert_eq!(lines.len(), SWISS_PAYLOAD_LINES);
        assert_eq!(&lines[5..11], ["Bank AG", "Musterstrasse", "7a", "9490", "Vaduz", "LI"]);
        assert_eq!((lines[18].as_str(), lines[19].as_str()), ("0.50", "EUR"));
        assert_eq!(b.address_lines(), ["Musterstrasse 7a", "LI-9490 Vaduz"]);
    }

    #[test]
    fn swiss_specimen_for_other_currencies() {
        let b = bill(QR_IBAN, "KUDOS:10");
        assert!(b.is_specimen());
        let lines: Vec<String> = b.payload().split('\n').map(str::to_owned).collect();
        assert_eq!(lines.len(), SWISS_PAYLOAD_LINES);
        assert_eq!((lines[18].as_str(), lines[19].as_str()), ("", "CHF"));
        assert_eq!(b.amount_display(), None);
    }

    #[test]
    fn swiss_human_readable_part() {
        let b = bill(QR_IBAN, "CHF:1234567.5");
        assert_eq!(b.account_display(), "CH44 3199 9123 0008 8901 2");
        assert_eq!(b.reference_display(), "21 00000 00003 13947 14300 09017");
        assert_eq!(b.amount_display().as_deref(), Some("1 234 567.50"));
        assert_eq!(b.creditor_name(), "Exchange");
        assert_eq!(b.address_lines(), ["CH-8000 Zürich"]);
        assert_eq!(b.currency().code(), "CHF");
        assert_eq!(group_thousands("999.00"), "999.00");
        assert_eq!(group_thousands("1000.00"), "1 000.00");
        assert_eq!(group_thousands("0.01"), "0.01");
    }

    #[test]
    fn swiss_rejections() {
        let amount = Amount::parse("CHF:1").unwrap();
        let plain = Payto::parse("payto://iban/CH9300762011623852957?receiver-name=X").unwrap();
        assert!(matches!(
            SwissQrBill::new(&plain, &zurich(), &amount, REFERENCE),
            Err(QrBillError::NotQrIban(_))
        ));
        let taler = Payto::parse("payto://x-taler-bank/bank.example.com/a?receiver-name=A").unwrap();
        assert_eq!(SwissQrBill::new(&taler, &zurich(), &amount, REFERENCE), Err(QrBillError::NotIban));
        let qr = Payto::parse(QR_IBAN).unwrap();
        let bad_ref = "210000000003139471430009018";
        assert!(matches!(
            SwissQrBill::new(&qr, &zurich(), &amount, bad_ref),
            Err(QrBillError::InvalidReference(_))
        ));
        let grouped = group_qr_reference(REFERENCE);
        assert!(SwissQrBill::new(&qr, &zurich(), &amount, &grouped).is_err());
        for (text, err) in [
            ("CHF:0", "outside"),
            ("CHF:1000000000", "outside"),
            ("CHF:1.005", "two decimals"),
            ("EUR:0.001", "two decimals"),
        ] {
            let e = SwissQrBill::new(&qr, &zurich(), &Amount::parse(text).unwrap(), REFERENCE).unwrap_err();
            assert!(e.to_string().contains(err), "{text}: {e}");
        }
        assert_eq!(hundredths(&Amount::parse("CHF:999999999.99").unwrap()).unwrap(), "999999999.99");
        assert_eq!(hundredths(&Amount::parse("CHF:0.01").unwrap()).unwrap(), "0.01");
        // A line break in the name would shift every later element.
        let newline = Payto::parse("payto://iban/CH4431999123000889012?receiver-name=A%0AB").unwrap();
        let e = SwissQrBill::new(&newline, &zurich(), &amount, REFERENCE).unwrap_err();
        assert!(matches!(e, QrBillError::Field { field: "creditor name", .. }), "{e}");
        let cjk = Payto::parse("payto://iban/CH4431999123000889012?receiver-name=%E6%9D%B1").unwrap();
        assert!(SwissQrBill::new(&cjk, &zurich(), &amount, REFERENCE).is_err());
        let long = format!("payto://iban/CH4431999123000889012?receiver-name={}", "a".repeat(71));
        let e = SwissQrBill::new(&Payto::parse(&long).unwrap(), &zurich(), &amount, REFERENCE).unwrap_err();
        assert!(e.to_string().contains("more than 70"), "{e}");
        let e = SwissQrBill::new(&qr, &CreditorAddress::new("", "Bern"), &amount, REFERENCE).unwrap_err();
        assert!(e.to_string().contains("postcode is empty"), "{e}");
        let e = SwissQrBill::new(&qr, &CreditorAddress::new("3000", &"B".repeat(36)), &amount, REFERENCE)
            .unwrap_err();
        assert!(e.to_string().contains("town has more than 35"), "{e}");
        // Latin Extended-A, the Romanian letters and the euro sign are in the Swiss set.
        for ok in ["Łódź", "Ștefan", "€ AG", "Ærø"] {
            assert!(swiss_text("t", ok, 70, true).is_ok(), "{ok}");
        }
        let no_name = Payto::parse_account("payto://iban/CH4431999123000889012").unwrap();
        assert_eq!(SwissQrBill::new(&no_name, &zurich(), &amount, REFERENCE), Err(QrBillError::MissingName));
    }

    #[test]
    fn epc_payload_element_by_element() {
        let p =
            Payto::parse("payto://iban/GENODEM1GLS/DE89370400440532013000?receiver-name=Erika%20M").unwrap();
        let subject = "KYC:87WXSE5KSPJ92JRECQ4NSRRQNA81JZXDN0PKW9H7TR9599XC5200";
        let c = EpcQrCode::new(&p, &Amount::parse("EUR:12.5").unwrap(), subject).unwrap();
        let payload = c.payload();
        assert!(!payload.contains('\r') && !payload.ends_with('\n'));
        let lines: Vec<&str> = payload.split('\n').collect();
        let expected: [(&str, &str); EPC_PAYLOAD_LINES] = [
            ("Service Tag", "BCD"),
            ("Version", "002"),
            ("Character set", "1"),
            ("Identification", "SCT"),
            ("BIC", "GENODEM1GLS"),
            ("Name", "Erika M"),
            ("IBAN", "DE89370400440532013000"),
            ("Amount", "EUR12.50"),
            ("Purpose", ""),
            ("Remittance (structured)", ""),
            ("Remittance (unstructured)", subject),
        ];
        assert_eq!(lines.len(), expected.len());
        for (i, ((field, want), got)) in expected.iter().zip(&lines).enumerate() {
            assert_eq!(got, want, "element {} ({field})", i + 1);
        }
        assert!(payload.len() <= 331, "EPC payloads are at most 331 bytes");
        assert!(!c.is_specimen());
        assert_eq!((c.bic(), c.amount()), (Some("GENODEM1GLS"), Some("EUR12.50")));
        assert_eq!(c.account_display(), "DE89 3704 0044 0532 0130 00");
        assert_eq!(c.beneficiary_name(), "Erika M");
    }

    #[test]
    fn epc_without_bic_and_specimen() {
        let p = Payto::parse("payto://iban/DE89370400440532013000?receiver-name=E").unwrap();
        let c = EpcQrCode::new(&p, &Amount::parse("KUDOS:3").unwrap(), "SUBJECT").unwrap();
        assert!(c.is_specimen());
        assert_eq!(c.payload(), "BCD\n002\n1\nSCT\n\nE\nDE89370400440532013000\n\n\n\nSUBJECT");
        // CHF has no EPC code either.
        assert!(EpcQrCode::new(&p, &Amount::parse("CHF:3").unwrap(), "S").unwrap().is_specimen());
        assert!(EpcQrCode::new(&p, &Amount::parse("EUR:3.001").unwrap(), "S").is_err());
        assert!(EpcQrCode::new(&p, &Amount::parse("EUR:1").unwrap(), "").is_err());
        assert!(EpcQrCode::new(&p, &Amount::parse("EUR:1").unwrap(), "a\nb").is_err());
        assert!(EpcQrCode::new(&p, &Amount::parse("EUR:1").unwrap(), &"x".repeat(141)).is_err());
        assert!(EpcQrCode::new(&p, &Amount::parse("EUR:1").unwrap(), &"x".repeat(140)).is_ok());
        let taler = Payto::parse("payto://x-taler-bank/bank.example.com/a?receiver-name=A").unwrap();
        assert_eq!(EpcQrCode::new(&taler, &Amount::parse("EUR:1").unwrap(), "S"), Err(QrBillError::NotIban));
    }

    #[test]
    fn bic_from_payto() {
        let with = Payto::parse("PAYTO://IBAN/GENODEM1GLS/DE89370400440532013000?receiver-name=E").unwrap();
        assert_eq!(payto_bic(&with), Some("GENODEM1GLS"));
        let without = Payto::parse("payto://iban/DE89370400440532013000?receiver-name=E/x").unwrap();
        assert_eq!(payto_bic(&without), None);
        let other = Payto::parse("payto://x-taler-bank/bank.example.com/a?receiver-name=A").unwrap();
        assert_eq!(payto_bic(&other), None);
    }

    #[test]
    fn swiss_round_trip_through_a_raster() {
        for (account, amount) in [(QR_IBAN, "CHF:1949.75"), (QR_IBAN, "KUDOS:5")] {
            let b = bill(account, amount);
            let payload = b.payload();
            let matrix = QrMatrix::encode(&payload, SWISS_MAX_VERSION).unwrap();
            for scale in [4, 7] {
                let decoded = decode_all(raster(&matrix, true, scale));
                assert_eq!(decoded, std::slice::from_ref(&payload), "scale {scale}");
            }
        }
    }

    #[test]
    fn epc_round_trip_through_a_raster() {
        let p =
            Payto::parse("payto://iban/GENODEM1GLS/DE89370400440532013000?receiver-name=Erika%20M").unwrap();
        let c = EpcQrCode::new(&p, &Amount::parse("EUR:12.5").unwrap(), &"Q".repeat(52)).unwrap();
        let matrix = QrMatrix::encode(&c.payload(), EPC_MAX_VERSION).unwrap();
        assert_eq!(decode_all(raster(&matrix, false, 5)), [c.payload()]);
    }

    #[test]
    fn swiss_cross_geometry() {
        let matrix = QrMatrix::encode(&bill(QR_IBAN, "CHF:1").payload(), SWISS_MAX_VERSION).unwrap();
        let mm = matrix.width as f64 / SWISS_CODE_MM;
        let [border, black, vertical, horizontal] = matrix.swiss_cross();
        let centre = matrix.side() as f64 / 2.0;
        for r in [border, black, vertical, horizontal] {
            assert!((r.x + r.w / 2.0 - centre).abs() < 1e-9 && (r.y + r.h / 2.0 - centre).abs() < 1e-9);
        }
        assert!((border.w - 7.0 * mm).abs() < 1e-9 && !border.dark);
        assert!((black.w - 6.0 * mm).abs() < 1e-9 && black.dark);
        assert!(!vertical.dark && !horizontal.dark);
        assert!((vertical.h / vertical.w - 10.0 / 3.0).abs() < 1e-9, "arms a sixth longer than wide");
        assert_eq!((vertical.w, vertical.h), (horizontal.h, horizontal.w));
    }

    #[test]
    fn encoding_choices() {
        let payload = bill(QR_IBAN, "CHF:1").payload();
        let matrix = QrMatrix::encode(&payload, SWISS_MAX_VERSION).unwrap();
        // Level M, one byte segment: version from the payload's byte length alone.
        let mut prepared = rqrr::PreparedImage::prepare(raster(&matrix, false, 4));
        let (meta, _) = prepared.detect_grids()[0].decode().unwrap();
        assert_eq!(meta.ecc_level, 0, "rqrr gives the raw format bits, 00 for level M");
        assert_eq!(matrix.width, 17 + 4 * meta.version.0);
        assert!(matches!(QrMatrix::encode(&"x".repeat(332), EPC_MAX_VERSION), Err(QrBillError::TooLong(13))));
        assert!(QrMatrix::encode(&"x".repeat(331), EPC_MAX_VERSION).is_ok());
        assert!(QrMatrix::encode(&"x".repeat(997), SWISS_MAX_VERSION).is_ok());
        assert!(QrMatrix::encode(&"x".repeat(998), SWISS_MAX_VERSION).is_err());
    }

    #[test]
    fn svg_shape() {
        let b = bill(QR_IBAN, "CHF:1");
        let svg = b.svg().unwrap();
        let matrix = QrMatrix::encode(&b.payload(), SWISS_MAX_VERSION).unwrap();
        let side = matrix.side();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        assert!(svg.ends_with("</svg>"));
        // Border, black square and two bars over the modules.
        assert_eq!(svg.matches("<rect").count(), 1 + 4);
        assert!(svg.contains("aria-label=\"Swiss QR code\""));
        // The code itself prints at 46 mm; the quiet zone adds to it.
        let expected_mm = num(46.0 * side as f64 / matrix.width as f64);
        assert!(svg.contains(&format!("width=\"{expected_mm}mm\"")), "{expected_mm}");
        let p = Payto::parse("payto://iban/DE89370400440532013000?receiver-name=E").unwrap();
        let epc = EpcQrCode::new(&p, &Amount::parse("EUR:1").unwrap(), "S").unwrap().svg().unwrap();
        assert_eq!(epc.matches("<rect").count(), 1, "no cross on the EPC code");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(2.123456), "2.1235");
    }
}
