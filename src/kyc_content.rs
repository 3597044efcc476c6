//! Content checks for `POST /kyc-bulk/$EXTERN_PUB` bodies (checks 4, 10 and 11 of
//! `docs/kyc-bulk.md`).
//!
//! The upstream API only accepts PDF, audio, image and video files, or ZIP archives holding
//! only those. A third party could otherwise park arbitrary data (executables, nested archives,
//! encrypted blobs nobody can audit) in the exchange's KYC store under a harmless
//! `Content-Type`. This module decides, from as few bytes as possible, whether a body is what
//! it claims to be:
//!
//! - [`parse_content_type`] checks the header before any body byte is read (check 4);
//! - [`check_magic`] sniffs the first [`SNIFF_LEN`] bytes against the declared family (check 10);
//! - [`check_zip`] walks an archive's central directory and sniffs the first bytes of every
//!   entry (check 11). It never extracts an entry: every read is bounded, so a zip bomb costs no
//!   more than a well-behaved archive of the same size.
//!
//! Everything here is pure (no I/O beyond the reader handed in) and never panics on input;
//! every rejection is a [`ContentError`] whose `Display` is a one-line reason meant for the
//! `detail` of an HTTP 400 answer.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use thiserror::Error;

/// How many leading bytes [`check_magic`] and the per-entry sniffing in [`check_zip`] look at.
///
/// `infer`'s matchers look at most 262 bytes deep (tar's `ustar` at offset 257; Matroska and
/// WebM search their doctype in the first 256 bytes; a PDF header may sit anywhere in the
/// first 1024 bytes for `infer`, though we require it at offset 0). 4 KiB covers all of them
/// with room to spare and keeps the per-entry cost of a 10,000-entry archive at 40 MiB of
/// decompression at most.
pub const SNIFF_LEN: usize = 4096;

/// The most entries (files and directories) an uploaded archive may hold (check 11 of `docs/kyc-bulk.md`).
pub const MAX_ZIP_ENTRIES: usize = 10_000;

/// How many bytes of an archive may be read to obtain the first [`SNIFF_LEN`] decompressed
/// bytes of one entry.
///
/// Normal deflate output needs about 4 KiB of input for 4 KiB of output, plus one 32 KiB
/// buffer fill by the decoder. A crafted entry can instead hold a long run of empty deflate
/// blocks, and several central-directory records can point at the same data: without this
/// budget, 10,000 such records would make us inflate the same gigabyte 10,000 times. With it,
/// the total work is bounded by `MAX_ZIP_ENTRIES * ENTRY_READ_BUDGET` (about 2.4 GiB of
/// reads, the same order as the largest accepted upload).
const ENTRY_READ_BUDGET: u64 = 256 * 1024;

/// The longest entry name or header value echoed back in an error, in characters: names may
/// be up to 64 KiB long and an error detail should stay readable.
const MAX_ECHO_CHARS: usize = 200;

/// The media-type families `POST /kyc-bulk` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclaredType {
    /// `application/pdf`.
    Pdf,
    /// `audio/*`.
    Audio,
    /// `image/*`.
    Image,
    /// `video/*`.
    Video,
    /// `application/zip`; its entries must themselves be PDF, audio, image or video files.
    Zip,
}

impl DeclaredType {
    /// The family as `docs/kyc-bulk.md` writes it (`image/*`, `application/pdf`, ...), for messages.
    pub fn family(self) -> &'static str {
        match self {
            DeclaredType::Pdf => "application/pdf",
            DeclaredType::Audio => "audio/*",
            DeclaredType::Image => "image/*",
            DeclaredType::Video => "video/*",
            DeclaredType::Zip => "application/zip",
        }
    }
}

/// What [`check_zip`] learnt about an accepted archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipSummary {
    /// All entries in the central directory, directories included.
    pub entries: usize,
    /// The entries that are files (each one checked by name and content).
    pub files: usize,
}

/// One file entry of a stored archive, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntryInfo {
    /// Its index in the central directory (what [`copy_zip_entry`] takes).
    pub index: usize,
    pub name: String,
    pub size: u64,
    pub compressed_size: u64,
    /// The type its first bytes show, if a known one.
    pub sniffed: Option<&'static str>,
}

/// The file entries of an archive that [`check_zip`] accepted, each sniffed by its first
/// bytes; reads the central directory and each entry's first bytes, nothing more.
///
/// # Errors
/// [`ContentError::ZipUnreadable`] when the archive cannot be read.
pub fn list_zip_entries<R: Read + Seek>(reader: R) -> Result<Vec<ZipEntryInfo>, ContentError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
    let mut entries = Vec::new();
    for index in 0..archive.len().min(MAX_ZIP_ENTRIES) {
        let mut entry = archive.by_index(index).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
        if entry.is_dir() {
            continue;
        }
        let name = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
        };
        let (size, compressed_size) = (entry.size(), entry.compressed_size());
        let mut first = Vec::with_capacity(SNIFF_LEN);
        (&mut entry)
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut first)
            .map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
        entries.push(ZipEntryInfo {
            index,
            name,
            size,
            compressed_size,
            sniffed: infer::get(&first).map(|t| t.mime_type()),
        });
    }
    Ok(entries)
}

/// Copies entry `index` of an archive to `out`, decompressing as it goes (memory bounded by
/// the copy buffer, whatever the entry's size). Returns the type its first bytes show.
///
/// # Errors
/// [`ContentError::ZipUnreadable`] when the archive or the entry cannot be read, or the entry
/// is a directory.
pub fn copy_zip_entry<R: Read + Seek, W: std::io::Write>(
    reader: R,
    index: usize,
    mut out: W,
) -> Result<(), ContentError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
    let mut entry = archive.by_index(index).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
    if entry.is_dir() {
        return Err(ContentError::ZipUnreadable("the entry is a directory".into()));
    }
    std::io::copy(&mut entry, &mut out).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
    Ok(())
}

/// Why a body's `Content-Type` or content is refused.
///
/// `Display` gives one line, suitable as the `detail` of an HTTP 400 answer (code 26);
/// entry names and header values in it are escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    /// The `Content-Type` value has no media type at all.
    #[error("Content-Type is empty")]
    EmptyContentType,
    /// The `Content-Type` value is not of the form `type/subtype`.
    #[error("Content-Type '{0}' is not a media type of the form type/subtype")]
    MalformedContentType(String),
    /// A well-formed media type outside the accepted families.
    #[error(
        "Content-Type '{0}' is not accepted: use application/pdf, audio/*, image/*, video/* or application/zip"
    )]
    UnsupportedContentType(String),
    /// The body has no bytes.
    #[error("the body is empty")]
    EmptyBody,
    /// The first bytes belong to a recognised type outside the declared family.
    #[error("declared {declared}, but the body looks like {found}")]
    WrongType {
        /// The declared family, e.g. `image/*`.
        declared: &'static str,
        /// The type recognised from the first bytes, e.g. `application/pdf`.
        found: &'static str,
    },
    /// The first bytes match no known type.
    #[error("declared {declared}, but the body's format is unrecognised")]
    Unrecognised {
        /// The declared family, e.g. `image/*`.
        declared: &'static str,
    },
    /// The archive cannot be opened (truncated, garbage, unsupported layout).
    #[error("the body is not a readable ZIP archive: {0}")]
    ZipUnreadable(String),
    /// The archive has too many entries.
    #[error("the archive has {0} entries, more than the limit of {MAX_ZIP_ENTRIES}")]
    ZipTooManyEntries(u64),
    /// The archive has no file (it is empty or holds only directories).
    #[error("the archive contains no files")]
    ZipNoFiles,
    /// One entry of the archive is refused.
    #[error("entry '{name}': {problem}")]
    ZipEntry {
        /// The entry's name, escaped and shortened for display.
        name: String,
        /// What is wrong with it.
        problem: EntryProblem,
    },
}

/// Why one archive entry is refused (see [`ContentError::ZipEntry`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryProblem {
    /// The entry is encrypted: its content cannot be checked (or audited later).
    #[error("encrypted entries are not accepted")]
    Encrypted,
    /// The name ends in an archive extension (`.zip`, `.7z`, `.tar.gz`, ...).
    #[error("nested archives are not accepted")]
    NestedArchiveByName,
    /// The first bytes are an archive or compressed stream.
    #[error("nested archives are not accepted (the content looks like {0})")]
    NestedArchiveByContent(&'static str),
    /// The name does not say PDF, audio, image or video.
    #[error("not a PDF, audio, image or video file")]
    NameNotAccepted,
    /// The entry holds no bytes.
    #[error("the file is empty")]
    Empty,
    /// The first bytes belong to a recognised type that does not match the name.
    #[error("the name says {declared}, but the content looks like {found}")]
    WrongType {
        /// The family the name implies, e.g. `application/pdf`.
        declared: &'static str,
        /// The type recognised from the first bytes.
        found: &'static str,
    },
    /// The first bytes match no known type.
    #[error("the name says {declared}, but the content's format is unrecognised")]
    Unrecognised {
        /// The family the name implies.
        declared: &'static str,
    },
    /// Reaching the first bytes would take more than `ENTRY_READ_BUDGET` bytes of the
    /// archive (a decompression bomb or a pathological encoding).
    #[error("too much compressed data before its first bytes")]
    ReadBudgetExceeded,
    /// The entry cannot be read (unsupported compression method, corrupt data).
    #[error("cannot be read: {0}")]
    Unreadable(String),
}

/// Parses a `Content-Type` header value for `POST /kyc-bulk` (check 4 of `docs/kyc-bulk.md`).
///
/// Accepts `application/pdf`, `audio/*`, `image/*`, `video/*` and `application/zip`,
/// case-insensitively, ignoring parameters (`; name=x.pdf`) and surrounding whitespace.
/// Returns the family and the normalized essence (`type/subtype`, lower-case), which is what
/// should be stored and served back.
///
/// # Errors
/// [`ContentError::EmptyContentType`], [`ContentError::MalformedContentType`] (no subtype,
/// characters not allowed in a media type, a `*` wildcard) or
/// [`ContentError::UnsupportedContentType`].
pub fn parse_content_type(value: &str) -> Result<(DeclaredType, String), ContentError> {
    // Parameters are ignored (`docs/kyc-bulk.md`, check 4), so they are not even validated: a client sending
    // `; name="résumé.pdf"` should not be refused for an encoding nobody looks at.
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.is_empty() {
        return Err(ContentError::EmptyContentType);
    }
    let lower = essence.to_ascii_lowercase();
    let malformed = || ContentError::MalformedContentType(echo(essence));
    let (top, sub) = lower.split_once('/').ok_or_else(malformed)?;
    // A wildcard is a pattern, not a type: it would be stored and served back as the blob's
    // Content-Type, which must name a concrete type.
    if !is_token(top) || !is_token(sub) || top == "*" || sub == "*" {
        return Err(malformed());
    }
    let declared = match (top, sub) {
        ("application", "pdf") => DeclaredType::Pdf,
        ("application", "zip") => DeclaredType::Zip,
        ("audio", _) => DeclaredType::Audio,
        ("image", _) => DeclaredType::Image,
        ("video", _) => DeclaredType::Video,
        _ => return Err(ContentError::UnsupportedContentType(echo(essence))),
    };
    Ok((declared, lower))
}

/// Checks that a body's first bytes are of the declared family (check 10 of `docs/kyc-bulk.md`).
///
/// Pass the first [`SNIFF_LEN`] bytes of the body (or all of it, if shorter); bytes beyond
/// `SNIFF_LEN` are ignored. Rules:
/// - PDF: starts with `%PDF-`;
/// - image, audio, video: one of `infer`'s matchers of that family matches. Audio also
///   accepts the MP4, QuickTime, Matroska and WebM containers, and video also accepts Ogg,
///   because these containers are used for both (`audio/mp4`, `audio/webm`, `video/ogg`) and
///   `infer` files each under one family only;
/// - ZIP: starts with a local file header (`PK\x03\x04`) or is an empty archive
///   (`PK\x05\x06`). The archive itself is checked by [`check_zip`].
///
/// # Errors
/// [`ContentError::EmptyBody`], [`ContentError::WrongType`] or
/// [`ContentError::Unrecognised`].
pub fn check_magic(declared: DeclaredType, first_bytes: &[u8]) -> Result<(), ContentError> {
    sniff(declared, first_bytes).map_err(|mismatch| match mismatch {
        Mismatch::Empty => ContentError::EmptyBody,
        Mismatch::Found(found) => ContentError::WrongType { declared: declared.family(), found },
        Mismatch::Unrecognised => ContentError::Unrecognised { declared: declared.family() },
    })
}

/// Checks an uploaded `application/zip` body (check 11 of `docs/kyc-bulk.md`).
///
/// Reads the central directory and, for each file entry, at most [`SNIFF_LEN`] decompressed
/// bytes (and at most `ENTRY_READ_BUDGET` bytes of the archive): nothing is extracted. The
/// archive must hold at least one file and at most [`MAX_ZIP_ENTRIES`] entries; no entry may
/// be encrypted; directories are skipped; every file must be a PDF, audio, image or video file
/// both by its name (`mime_guess` on the extension) and by its first bytes (the same rules as
/// [`check_magic`], for the family the name implies), and must not be an archive by name or
/// by content.
///
/// The archive may start at an offset inside `reader` (as the `zip` crate allows); whether
/// the body starts with a ZIP signature is [`check_magic`]'s job.
///
/// # Errors
/// [`ContentError::ZipUnreadable`], [`ContentError::ZipTooManyEntries`],
/// [`ContentError::ZipNoFiles`], or [`ContentError::ZipEntry`] naming the first bad entry.
pub fn check_zip<R: Read + Seek>(mut reader: R) -> Result<ZipSummary, ContentError> {
    // The zip crate keeps every central-directory record in memory, so a 2 GiB body of
    // minimal records would cost gigabytes before `len()` could be checked. Refuse early on
    // the count that the end-of-central-directory record announces.
    // A failed look-up is not an error here: the zip crate's own parsing decides.
    if let Ok(Some(count)) = announced_entry_count(&mut reader)
        && count > MAX_ZIP_ENTRIES as u64
    {
        return Err(ContentError::ZipTooManyEntries(count));
    }

    let budget = Rc::new(Budget::default());
    let budgeted = BudgetReader { inner: reader, budget: Rc::clone(&budget) };
    let mut archive =
        zip::ZipArchive::new(budgeted).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
    let entries = archive.len();
    if entries > MAX_ZIP_ENTRIES {
        return Err(ContentError::ZipTooManyEntries(entries as u64));
    }

    let mut files = 0;
    let mut first = Vec::with_capacity(SNIFF_LEN);
    for index in 0..entries {
        let (name, is_dir, encrypted) = {
            let entry =
                archive.by_index_data(index).map_err(|e| ContentError::ZipUnreadable(one_line(&e)))?;
            let name = match entry.name() {
                Ok(name) => name.into_owned(),
                Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
            };
            (name, entry.is_dir(), entry.encrypted())
        };
        let refuse = |problem| ContentError::ZipEntry { name: echo(&name), problem };
        // Before the directory check: an encrypted directory is still an encrypted entry.
        if encrypted {
            return Err(refuse(EntryProblem::Encrypted));
        }
        if is_dir {
            continue;
        }
        files += 1;

        let by_name = family_by_name(&name).map_err(refuse)?;

        first.clear();
        budget.start(ENTRY_READ_BUDGET);
        let read = archive.by_index(index).and_then(|entry| {
            entry.take(SNIFF_LEN as u64).read_to_end(&mut first).map_err(zip::result::ZipError::Io)
        });
        let exceeded = budget.exceeded.get();
        budget.start(u64::MAX);
        if exceeded {
            return Err(refuse(EntryProblem::ReadBudgetExceeded));
        }
        read.map_err(|e| refuse(EntryProblem::Unreadable(one_line(&e))))?;

        if let Some(kind) = archive_kind(&first) {
            return Err(refuse(EntryProblem::NestedArchiveByContent(kind)));
        }
        sniff(by_name, &first).map_err(|mismatch| {
            refuse(match mismatch {
                Mismatch::Empty => EntryProblem::Empty,
                Mismatch::Found(found) => EntryProblem::WrongType { declared: by_name.family(), found },
                Mismatch::Unrecognised => EntryProblem::Unrecognised { declared: by_name.family() },
            })
        })?;
    }
    if files == 0 {
        return Err(ContentError::ZipNoFiles);
    }
    Ok(ZipSummary { entries, files })
}

/// Why some bytes are not of the expected family; the caller words it.
enum Mismatch {
    Empty,
    Found(&'static str),
    Unrecognised,
}

fn sniff(expected: DeclaredType, bytes: &[u8]) -> Result<(), Mismatch> {
    let bytes = bytes.get(..SNIFF_LEN).unwrap_or(bytes);
    if bytes.is_empty() {
        return Err(Mismatch::Empty);
    }
    let matches = match expected {
        DeclaredType::Pdf => is_pdf(bytes),
        DeclaredType::Image => infer::is_image(bytes),
        DeclaredType::Audio => infer::is_audio(bytes) || is_av_container(bytes),
        DeclaredType::Video => infer::is_video(bytes) || infer::audio::is_ogg(bytes),
        DeclaredType::Zip => bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06"),
    };
    if matches {
        return Ok(());
    }
    Err(describe(bytes).map_or(Mismatch::Unrecognised, Mismatch::Found))
}

/// Our PDF rule is stricter than `infer`'s (which finds `%PDF` anywhere in the first KiB):
/// leading junk is how polyglot files hide a second format in front of the PDF.
fn is_pdf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// Containers `infer` files under video that routinely carry audio only.
fn is_av_container(bytes: &[u8]) -> bool {
    infer::video::is_mp4(bytes)
        || infer::video::is_mov(bytes)
        || infer::video::is_mkv(bytes)
        || infer::video::is_webm(bytes)
}

/// The type to name in an error, or `None` for "unrecognised".
fn describe(bytes: &[u8]) -> Option<&'static str> {
    if is_pdf(bytes) {
        return Some("application/pdf");
    }
    // `infer` would call text with `%PDF` somewhere in it a PDF; by our rule it is not one,
    // and saying "looks like application/pdf" when refusing a declared PDF would confuse.
    infer::get(bytes).map(|kind| kind.mime_type()).filter(|mime| *mime != "application/pdf")
}

/// `infer`'s archive family also holds PDF, PostScript, SQLite, RTF, fonts and more: only
/// these are archives or compressed streams.
const ARCHIVE_MATCHERS: &[(&str, infer::Matcher)] = &[
    ("application/zip", infer::archive::is_zip),
    ("application/x-tar", infer::archive::is_tar),
    ("application/vnd.rar", infer::archive::is_rar),
    ("application/x-7z-compressed", infer::archive::is_7z),
    ("application/gzip", infer::archive::is_gz),
    ("application/x-bzip2", infer::archive::is_bz2),
    ("application/vnd.bzip3", infer::archive::is_bz3),
    ("application/x-xz", infer::archive::is_xz),
    ("application/zstd", infer::archive::is_zst),
    ("application/x-lz4", infer::archive::is_lz4),
    ("application/x-lzip", infer::archive::is_lz),
    ("application/x-compress", infer::archive::is_z),
    ("application/vnd.ms-cab-compressed", infer::archive::is_cab),
    ("application/x-unix-archive", infer::archive::is_ar),
    ("application/vnd.debian.binary-package", infer::archive::is_deb),
    ("application/x-rpm", infer::archive::is_rpm),
    ("application/x-cpio", infer::archive::is_cpio),
    ("application/x-google-chrome-extension", infer::archive::is_crx),
    ("application/x-par2", infer::archive::is_par2),
];

/// Checked before the family: a tar's first bytes are a member's name, so a tar can pass
/// for anything a name can start with (e.g. a PNG signature).
fn archive_kind(bytes: &[u8]) -> Option<&'static str> {
    ARCHIVE_MATCHERS.iter().find(|(_, matches)| matches(bytes)).map(|(mime, _)| *mime)
}

/// Extensions of archives and compressed files, refused by name whatever the content.
const ARCHIVE_EXTENSIONS: &[&str] = &[
    "zip", "zipx", "7z", "rar", "tar", "gz", "tgz", "bz2", "tbz", "tbz2", "bz3", "xz", "txz", "lz", "lz4",
    "lzma", "tlz", "zst", "tzst", "z", "cab", "ar", "deb", "rpm", "cpio", "arj", "lzh", "lha", "ace", "jar",
    "war", "ear", "apk", "ipa", "crx", "xpi", "iso", "dmg", "wim", "par2", "sit", "sitx",
];

fn family_by_name(name: &str) -> Result<DeclaredType, EntryProblem> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let extension = base.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    if extension.as_deref().is_some_and(|ext| ARCHIVE_EXTENSIONS.contains(&ext)) {
        return Err(EntryProblem::NestedArchiveByName);
    }
    // `mime_guess` may offer several types for one extension; any accepted one will do,
    // the content check then decides.
    mime_guess::from_path(base)
        .iter_raw()
        .filter_map(|mime| parse_content_type(mime).ok())
        .map(|(family, _)| family)
        .find(|family| *family != DeclaredType::Zip)
        .ok_or(EntryProblem::NameNotAccepted)
}

/// The `Content-Type` a file's name suggests: what `client kyc-bulk` sends and what an
/// `[[upload]]` fixture defaults to. Whether it is accepted is [`parse_content_type`]'s call.
pub fn content_type_for_name(path: &std::path::Path) -> Option<String> {
    mime_guess::from_path(path).first().map(|m| m.essence_str().to_owned())
}

/// RFC 9110 `token`: what a media type's type and subtype are made of.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Escapes control characters and quotes and shortens, so that a hostile name or header
/// cannot break the one-line error detail.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_ECHO_CHARS).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX_ECHO_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    echo(&e.to_string())
}

/// The entry count announced by the last end-of-central-directory record (or its ZIP64
/// counterpart), if one can be found; `Ok(None)` leaves the verdict to the `zip` crate.
fn announced_entry_count<R: Read + Seek>(reader: &mut R) -> io::Result<Option<u64>> {
    const EOCD_LEN: u64 = 22;
    const EOCD_SIG: &[u8] = b"PK\x05\x06";
    const LOCATOR_LEN: u64 = 20;
    const LOCATOR_SIG: &[u8] = b"PK\x06\x07";
    const EOCD64_SIG: &[u8] = b"PK\x06\x06";

    let len = reader.seek(SeekFrom::End(0))?;
    if len < EOCD_LEN {
        return Ok(None);
    }
    // The record is followed by a comment of at most 64 KiB.
    let tail_len = len.min(EOCD_LEN + u64::from(u16::MAX));
    let tail_start = len - tail_len;
    let tail = read_at(reader, tail_start, tail_len)?;
    let Some(eocd) = tail
        .windows(EOCD_SIG.len())
        .rposition(|w| w == EOCD_SIG)
        .filter(|&at| at + EOCD_LEN as usize <= tail.len())
    else {
        return Ok(None);
    };
    let Some(count) = le_u16(&tail, eocd + 10) else {
        return Ok(None);
    };
    if count != u16::MAX {
        return Ok(Some(u64::from(count)));
    }
    // 0xFFFF means "see the ZIP64 record", found through the locator just before.
    let eocd_at = tail_start + eocd as u64;
    let Some(locator_at) = eocd_at.checked_sub(LOCATOR_LEN) else {
        return Ok(None);
    };
    let locator = read_at(reader, locator_at, LOCATOR_LEN)?;
    let Some(eocd64_at) = le_u64(&locator, 8).filter(|_| locator.starts_with(LOCATOR_SIG)) else {
        return Ok(None);
    };
    if eocd64_at.checked_add(56).is_none_or(|end| end > len) {
        return Ok(None);
    }
    let eocd64 = read_at(reader, eocd64_at, 56)?;
    if !eocd64.starts_with(EOCD64_SIG) {
        return Ok(None);
    }
    Ok(le_u64(&eocd64, 32))
}

fn read_at<R: Read + Seek>(reader: &mut R, at: u64, len: u64) -> io::Result<Vec<u8>> {
    reader.seek(SeekFrom::Start(at))?;
    let mut buf = Vec::new();
    reader.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

fn le_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Bytes the archive reader may still consume; shared with [`BudgetReader`] because the
/// `zip` crate owns the reader while we move from entry to entry.
#[derive(Debug)]
struct Budget {
    remaining: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { remaining: Cell::new(u64::MAX), exceeded: Cell::new(false) }
    }
}

impl Budget {
    fn start(&self, bytes: u64) {
        self.remaining.set(bytes);
        self.exceeded.set(false);
    }
}

/// A reader that fails once its [`Budget`] is spent. Seeks are free: only reading (and
/// thus decompressing) costs.
struct BudgetReader<R> {
    inner: R,
    budget: Rc<Budget>,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.budget.remaining.get();
        if remaining == 0 && !buf.is_empty() {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("read budget exceeded"));
        }
        let allowed = usize::try_from(remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..allowed])?;
        self.budget.remaining.set(remaining.saturating_sub(n as u64));
        Ok(n)
    }
}

impl<R: Seek> Seek for BudgetReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Cursor, Write};
    use zip::CompressionMethod;
    use zip::write::SimpleFileOptions;

    const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04";
    const WAV: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x44\xac\x00\x00\x88\x58\x01\x00\x02\x00\x10\x00data\x00\x00\x00\x00";
    const MP3: &[u8] = b"ID3\x03\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    const MP4: &[u8] = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41\x00\x00\x00\x08free";
    const M4A: &[u8] = b"\x00\x00\x00\x18ftypM4A \x00\x00\x02\x00M4A isom\x00\x00\x00\x08free";
    const OGG: &[u8] = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00";
    const TEXT: &[u8] = b"Dear customer, please find attached your documents.\n";

    /// Matroska/WebM headers need their doctype within the first 256 bytes of a longer buffer.
    fn ebml(doctype: &[u8]) -> Vec<u8> {
        let mut v = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01".to_vec();
        v.extend_from_slice(b"\x42\x82");
        v.push(0x80 | doctype.len() as u8);
        v.extend_from_slice(doctype);
        v.resize(512, 0);
        v
    }

    enum Entry<'a> {
        File(&'a str, &'a [u8], CompressionMethod),
        Dir(&'a str),
    }
    use Entry::{Dir, File};

    fn build_zip(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for entry in entries {
            match entry {
                File(name, data, method) => {
                    let options = SimpleFileOptions::default().compression_method(*method);
                    w.start_file(*name, options).unwrap();
                    w.write_all(data).unwrap();
                }
                Dir(name) => w.add_directory(*name, SimpleFileOptions::default()).unwrap(),
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn stored<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
        File(name, data, CompressionMethod::Stored)
    }

    fn deflated<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
        File(name, data, CompressionMethod::Deflated)
    }

    fn check(bytes: &[u8]) -> Result<ZipSummary, ContentError> {
        check_zip(Cursor::new(bytes))
    }

    fn entry_problem(result: Result<ZipSummary, ContentError>) -> (String, EntryProblem) {
        match result {
            Err(ContentError::ZipEntry { name, problem }) => (name, problem),
            other => panic!("expected an entry error, got {other:?}"),
        }
    }

    /// Rewrites a field of every local (`PK\x03\x04`) and central (`PK\x01\x02`) header, the
    /// way a tool we cannot run here (an encrypting or exotic zipper) would have written it.
    /// Only for archives whose data cannot contain those signatures.
    fn patch_headers(zip: &mut [u8], local_at: usize, central_at: usize, f: impl Fn(u16) -> u16) {
        let mut i = 0;
        while i + 4 <= zip.len() {
            let at = match &zip[i..i + 4] {
                b"PK\x03\x04" => Some(i + local_at),
                b"PK\x01\x02" => Some(i + central_at),
                _ => None,
            };
            if let Some(at) = at {
                let old = u16::from_le_bytes([zip[at], zip[at + 1]]);
                zip[at..at + 2].copy_from_slice(&f(old).to_le_bytes());
            }
            i += 1;
        }
    }

    /// Rewrites a ZIP32 archive's end with a ZIP64 end record and locator announcing `count`
    /// entries, the 32-bit counts set to "see ZIP64".
    fn with_zip64_end(zip: &[u8], count: u64) -> Vec<u8> {
        let eocd = zip.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
        let cd_size = u32::from_le_bytes(zip[eocd + 12..eocd + 16].try_into().unwrap());
        let cd_offset = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap());
        let mut out = zip[..eocd].to_vec();
        let eocd64_at = out.len() as u64;
        out.extend_from_slice(b"PK\x06\x06");
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&u64::from(cd_size).to_le_bytes());
        out.extend_from_slice(&u64::from(cd_offset).to_le_bytes());
        out.extend_from_slice(b"PK\x06\x07");
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let mut end = zip[eocd..].to_vec();
        end[8..12].copy_from_slice(&[0xff; 4]);
        out.extend_from_slice(&end);
        out
    }

    // ---- parse_content_type ----

    #[test]
    fn content_type_accepts_the_five_families() {
        let cases = [
            ("application/pdf", DeclaredType::Pdf, "application/pdf"),
            ("Application/PDF", DeclaredType::Pdf, "application/pdf"),
            ("application/zip", DeclaredType::Zip, "application/zip"),
            ("audio/mpeg", DeclaredType::Audio, "audio/mpeg"),
            ("image/png", DeclaredType::Image, "image/png"),
            ("IMAGE/JPEG", DeclaredType::Image, "image/jpeg"),
            ("video/mp4", DeclaredType::Video, "video/mp4"),
            ("image/svg+xml", DeclaredType::Image, "image/svg+xml"),
            ("application/pdf; name=x.pdf", DeclaredType::Pdf, "application/pdf"),
            ("  image/png ; charset=\"x\" ", DeclaredType::Image, "image/png"),
            ("\tvideo/webm;codecs=vp9", DeclaredType::Video, "video/webm"),
        ];
        for (value, family, essence) in cases {
            assert_eq!(parse_content_type(value), Ok((family, essence.to_string())), "{value:?}");
        }
    }

    #[test]
    fn content_type_rejects_everything_else() {
        assert_eq!(parse_content_type(""), Err(ContentError::EmptyContentType));
        assert_eq!(parse_content_type("   "), Err(ContentError::EmptyContentType));
        assert_eq!(parse_content_type("; name=x.pdf"), Err(ContentError::EmptyContentType));
        for value in ["text/plain", "application/octet-stream", "application/pdfx", "text/pdf"] {
            assert!(
                matches!(parse_content_type(value), Err(ContentError::UnsupportedContentType(_))),
                "{value:?}"
            );
        }
        for value in ["image", "image/", "/png", "image/*", "*/*", "image/p ng", "image/png/x"] {
            assert!(
                matches!(parse_content_type(value), Err(ContentError::MalformedContentType(_))),
                "{value:?}"
            );
        }
        assert_eq!(
            parse_content_type("text/plain").unwrap_err().to_string(),
            "Content-Type 'text/plain' is not accepted: use application/pdf, audio/*, image/*, video/* or application/zip"
        );
        assert_eq!(
            parse_content_type("image").unwrap_err().to_string(),
            "Content-Type 'image' is not a media type of the form type/subtype"
        );
    }

    // ---- check_magic ----

    #[test]
    fn magic_accepts_each_family() {
        let webm = ebml(b"webm");
        let mkv = ebml(b"matroska");
        let zip = build_zip(&[stored("a.pdf", PDF)]);
        let empty_zip = build_zip(&[]);
        let cases: &[(DeclaredType, &[u8])] = &[
            (DeclaredType::Pdf, PDF),
            (DeclaredType::Image, PNG),
            (DeclaredType::Image, JPEG),
            (DeclaredType::Image, GIF),
            (DeclaredType::Audio, WAV),
            (DeclaredType::Audio, MP3),
            (DeclaredType::Audio, M4A),
            (DeclaredType::Audio, OGG),
            (DeclaredType::Video, MP4),
            (DeclaredType::Video, &webm),
            (DeclaredType::Video, &mkv),
            // Containers shared by audio and video.
            (DeclaredType::Audio, MP4),
            (DeclaredType::Audio, &webm),
            (DeclaredType::Video, OGG),
            (DeclaredType::Zip, &zip),
            (DeclaredType::Zip, &empty_zip),
        ];
        for (i, (declared, bytes)) in cases.iter().enumerate() {
            assert_eq!(check_magic(*declared, bytes), Ok(()), "case {i}: {declared:?}");
        }
    }

    #[test]
    fn magic_rejects_the_wrong_family() {
        let err = check_magic(DeclaredType::Image, PDF).unwrap_err();
        assert_eq!(err.to_string(), "declared image/*, but the body looks like application/pdf");
        assert_eq!(
            check_magic(DeclaredType::Pdf, PNG),
            Err(ContentError::WrongType { declared: "application/pdf", found: "image/png" })
        );
        assert!(matches!(
            check_magic(DeclaredType::Video, WAV),
            Err(ContentError::WrongType { found: "audio/x-wav", .. })
        ));
        assert!(matches!(check_magic(DeclaredType::Audio, JPEG), Err(ContentError::WrongType { .. })));
        assert!(matches!(
            check_magic(DeclaredType::Zip, PDF),
            Err(ContentError::WrongType { found: "application/pdf", .. })
        ));
        // An image declared as PDF, and a PDF declared as a ZIP.
        assert!(check_magic(DeclaredType::Image, MP4).is_err());
        assert!(check_magic(DeclaredType::Pdf, &build_zip(&[stored("a.pdf", PDF)])).is_err());
    }

    #[test]
    fn magic_rejects_empty_and_unrecognised_bodies() {
        assert_eq!(check_magic(DeclaredType::Pdf, b""), Err(ContentError::EmptyBody));
        assert_eq!(check_magic(DeclaredType::Pdf, b"").unwrap_err().to_string(), "the body is empty");
        let err = check_magic(DeclaredType::Image, TEXT).unwrap_err();
        assert_eq!(err.to_string(), "declared image/*, but the body's format is unrecognised");
        // `%PDF` after leading junk is not a PDF for us, and not called one in the message.
        let junk_then_pdf = [b"junk\n".as_slice(), PDF].concat();
        assert_eq!(
            check_magic(DeclaredType::Pdf, &junk_then_pdf),
            Err(ContentError::Unrecognised { declared: "application/pdf" })
        );
        // Too short to be anything.
        assert!(check_magic(DeclaredType::Pdf, b"%PD").is_err());
        assert!(check_magic(DeclaredType::Zip, b"PK").is_err());
    }

    #[test]
    fn magic_only_looks_at_sniff_len_bytes() {
        // A tar's signature sits at offset 257; anything after SNIFF_LEN must not matter.
        let mut body = PNG.to_vec();
        body.resize(SNIFF_LEN * 4, b'x');
        assert_eq!(check_magic(DeclaredType::Image, &body), Ok(()));
    }

    // ---- check_zip: accepted archives ----

    #[test]
    fn zip_with_stored_and_deflated_media_is_accepted() {
        let webm = ebml(b"webm");
        let zip = build_zip(&[
            Dir("scan/"),
            stored("scan/passport.pdf", PDF),
            deflated("scan/photo.PNG", PNG),
            deflated("scan/face.jpeg", JPEG),
            stored("anim.gif", GIF),
            deflated("voice/note.wav", WAV),
            stored("voice/note.mp3", MP3),
            deflated("voice/memo.m4a", M4A),
            deflated("voice/memo.ogg", OGG),
            deflated("video/selfie.mp4", MP4),
            deflated("video/selfie.webm", &webm),
        ]);
        assert_eq!(check(&zip), Ok(ZipSummary { entries: 11, files: 10 }));
    }

    // ---- check_zip: rejections ----

    #[test]
    fn zip_without_files_is_rejected() {
        assert_eq!(check(&build_zip(&[])), Err(ContentError::ZipNoFiles));
        let dirs_only = build_zip(&[Dir("a/"), Dir("a/b/")]);
        assert_eq!(check(&dirs_only), Err(ContentError::ZipNoFiles));
        assert_eq!(ContentError::ZipNoFiles.to_string(), "the archive contains no files");
    }

    #[test]
    fn zip_with_too_many_entries_is_rejected() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        for i in 0..=MAX_ZIP_ENTRIES {
            w.start_file(format!("{i}.pdf"), options).unwrap();
        }
        let zip = w.finish().unwrap().into_inner();
        let count = MAX_ZIP_ENTRIES as u64 + 1;
        assert_eq!(check(&zip), Err(ContentError::ZipTooManyEntries(count)));
        assert_eq!(
            check(&zip).unwrap_err().to_string(),
            "the archive has 10001 entries, more than the limit of 10000"
        );
    }

    #[test]
    fn announced_entry_count_reads_zip32_and_zip64_records() {
        let zip = build_zip(&[stored("a.pdf", PDF), Dir("d/")]);
        assert_eq!(announced_entry_count(&mut Cursor::new(&zip)).unwrap(), Some(2));
        // The zip crate only writes ZIP64 end records when it must: build one by hand, as
        // writers do past 65,535 entries (the 32-bit counts then say 0xFFFF).
        let zip64 = with_zip64_end(&zip, 2);
        assert_eq!(announced_entry_count(&mut Cursor::new(&zip64)).unwrap(), Some(2));
        assert_eq!(check(&zip64), Ok(ZipSummary { entries: 2, files: 1 }));
        // A count over the limit is refused from the end records alone.
        let claims_many = with_zip64_end(&zip, 70_000);
        assert_eq!(check(&claims_many), Err(ContentError::ZipTooManyEntries(70_000)));
        assert_eq!(announced_entry_count(&mut Cursor::new(b"")).unwrap(), None);
        assert_eq!(announced_entry_count(&mut Cursor::new(TEXT)).unwrap(), None);
    }

    #[test]
    fn encrypted_entry_is_rejected() {
        let mut zip = build_zip(&[stored("a.pdf", PDF), stored("secret.pdf", PDF)]);
        // Set bit 0 of the general-purpose flags (local header offset 6, central offset 8):
        // what ZipCrypto and AES writers do. Only the second entry, to check the name.
        let second_local = zip.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x03\x04").nth(1).unwrap().0;
        let second_central =
            zip.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").nth(1).unwrap().0;
        zip[second_local + 6] |= 1;
        zip[second_central + 8] |= 1;
        let (name, problem) = entry_problem(check(&zip));
        assert_eq!(name, "secret.pdf");
        assert_eq!(problem, EntryProblem::Encrypted);

        // Every entry encrypted, flag set through the shared helper.
        let mut all = build_zip(&[deflated("a.png", PNG)]);
        patch_headers(&mut all, 6, 8, |flags| flags | 1);
        assert_eq!(check(&all).unwrap_err().to_string(), "entry 'a.png': encrypted entries are not accepted");
    }

    #[test]
    fn nested_archive_is_rejected_by_name() {
        let inner = build_zip(&[stored("a.pdf", PDF)]);
        for name in ["inner.zip", "docs/Inner.ZIP", "x.tar.gz", "y.7z", "z.rar"] {
            let zip = build_zip(&[stored("ok.pdf", PDF), stored(name, &inner)]);
            let (entry, problem) = entry_problem(check(&zip));
            assert_eq!(entry, name);
            assert_eq!(problem, EntryProblem::NestedArchiveByName);
        }
        // By name even when the content is a harmless PDF.
        let zip = build_zip(&[stored("a.zip", PDF)]);
        assert_eq!(entry_problem(check(&zip)).1, EntryProblem::NestedArchiveByName);
    }

    #[test]
    fn nested_archive_is_rejected_by_content() {
        let inner = build_zip(&[stored("a.pdf", PDF)]);
        let zip = build_zip(&[deflated("holiday.png", &inner)]);
        let err = check(&zip).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 'holiday.png': nested archives are not accepted (the content looks like application/zip)"
        );
        // A gzip stream and a 7z archive under harmless names.
        let gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        let zip = build_zip(&[stored("scan.pdf", gz)]);
        assert_eq!(entry_problem(check(&zip)).1, EntryProblem::NestedArchiveByContent("application/gzip"));
        let seven = b"7z\xbc\xaf\x27\x1c\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00";
        let zip = build_zip(&[stored("voice.mp3", seven)]);
        assert_eq!(
            entry_problem(check(&zip)).1,
            EntryProblem::NestedArchiveByContent("application/x-7z-compressed")
        );
        // A tar whose first member is named like a PNG signature is still a tar.
        let mut tar = PNG.to_vec();
        tar.resize(512, 0);
        tar[257..263].copy_from_slice(b"ustar\0");
        let zip = build_zip(&[stored("x.png", &tar)]);
        assert_eq!(entry_problem(check(&zip)).1, EntryProblem::NestedArchiveByContent("application/x-tar"));
    }

    #[test]
    fn entry_name_must_say_pdf_audio_image_or_video() {
        let zip = build_zip(&[stored("a.pdf", PDF), stored("scan/letter.docx", PDF)]);
        assert_eq!(
            check(&zip).unwrap_err().to_string(),
            "entry 'scan/letter.docx': not a PDF, audio, image or video file"
        );
        // PNG bytes under a .txt name, and a name without extension.
        for name in ["photo.txt", "README", "photo.png.exe", "page.html"] {
            let zip = build_zip(&[stored(name, PNG)]);
            assert_eq!(entry_problem(check(&zip)), (name.to_string(), EntryProblem::NameNotAccepted));
        }
    }

    #[test]
    fn entry_content_must_match_its_name() {
        // Says .pdf, holds text.
        let zip = build_zip(&[deflated("contract.pdf", TEXT)]);
        assert_eq!(
            check(&zip).unwrap_err().to_string(),
            "entry 'contract.pdf': the name says application/pdf, but the content's format is unrecognised"
        );
        // Says .png, holds a PDF.
        let zip = build_zip(&[stored("photo.png", PDF)]);
        assert_eq!(
            entry_problem(check(&zip)).1,
            EntryProblem::WrongType { declared: "image/*", found: "application/pdf" }
        );
        // Says .mp4, holds a JPEG.
        let zip = build_zip(&[stored("clip.mp4", JPEG)]);
        assert!(matches!(
            entry_problem(check(&zip)).1,
            EntryProblem::WrongType { declared: "video/*", found: "image/jpeg" }
        ));
        // An empty file is not a PDF.
        let zip = build_zip(&[stored("empty.pdf", b"")]);
        assert_eq!(entry_problem(check(&zip)).1, EntryProblem::Empty);
    }

    #[test]
    fn truncated_or_garbage_archives_are_unreadable() {
        let zip = build_zip(&[stored("a.pdf", PDF), deflated("b.png", PNG)]);
        for cut in [0, 1, 10, zip.len() / 2, zip.len() - 1] {
            assert!(matches!(check(&zip[..cut]), Err(ContentError::ZipUnreadable(_))), "cut at {cut}");
        }
        assert!(matches!(check(TEXT), Err(ContentError::ZipUnreadable(_))));
        assert!(matches!(check(PDF), Err(ContentError::ZipUnreadable(_))));
        let msg = check(b"").unwrap_err().to_string();
        assert!(msg.starts_with("the body is not a readable ZIP archive: "), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn corrupt_entry_data_is_reported_with_the_entry_name() {
        // A "deflated" entry whose data is not a deflate stream.
        let mut zip = build_zip(&[stored("a.pdf", b"\xff\xff\xff\xff\xff\xff\xff\xff")]);
        patch_headers(&mut zip, 8, 10, |_| 8);
        let (name, problem) = entry_problem(check(&zip));
        assert_eq!(name, "a.pdf");
        assert!(matches!(problem, EntryProblem::Unreadable(_)), "{problem:?}");
        // A compression method this build cannot decode (bzip2 = 12).
        let mut zip = build_zip(&[stored("a.pdf", PDF)]);
        patch_headers(&mut zip, 8, 10, |_| 12);
        assert!(matches!(entry_problem(check(&zip)).1, EntryProblem::Unreadable(_)));
    }

    /// Counts the bytes pulled from the archive, to show that entries are never extracted.
    struct Counting<R> {
        inner: R,
        read: Rc<Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn huge_deflated_entry_is_only_sniffed() {
        // 256 MiB of a PDF followed by zeros deflates to about 250 KiB.
        const HUGE: u64 = 256 << 20;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).large_file(true);
        w.start_file("bomb.pdf", options).unwrap();
        w.write_all(PDF).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut written = PDF.len() as u64;
        while written < HUGE {
            w.write_all(&zeros).unwrap();
            written += zeros.len() as u64;
        }
        w.start_file("after.png", SimpleFileOptions::default()).unwrap();
        w.write_all(PNG).unwrap();
        let zip = w.finish().unwrap().into_inner();
        assert!(zip.len() < 1 << 20, "fixture should be small: {}", zip.len());

        let read = Rc::new(Cell::new(0));
        let reader = Counting { inner: Cursor::new(&zip), read: Rc::clone(&read) };
        assert_eq!(check_zip(reader), Ok(ZipSummary { entries: 2, files: 2 }));
        // Inflating the whole entry would read all of its ~250 KiB of compressed data.
        assert!(read.get() < zip.len() as u64 / 2, "read {} of {} bytes", read.get(), zip.len());
    }

    #[test]
    fn entry_that_needs_too_much_input_for_its_first_bytes_is_rejected() {
        // A deflate stream of empty stored blocks (5 bytes each, no output) before the data:
        // valid, but it takes more than the read budget to reach the first byte.
        // The data runs past SNIFF_LEN so that the reader stops before the end of the entry,
        // where the zip crate would compare the CRC (of the raw bytes, in this fixture).
        let mut data = PDF.to_vec();
        data.resize(SNIFF_LEN + 1000, b' ');
        let len = data.len() as u16;
        let mut final_block = vec![0x01];
        final_block.extend_from_slice(&len.to_le_bytes());
        final_block.extend_from_slice(&(!len).to_le_bytes());
        final_block.extend_from_slice(&data);
        const EMPTY_BLOCK: &[u8] = b"\x00\x00\x00\xff\xff";

        let mut stream = EMPTY_BLOCK.repeat(ENTRY_READ_BUDGET as usize * 2 / EMPTY_BLOCK.len());
        stream.extend_from_slice(&final_block);
        let mut zip = build_zip(&[stored("slow.pdf", &stream)]);
        patch_headers(&mut zip, 8, 10, |_| 8);
        assert_eq!(
            check(&zip).unwrap_err().to_string(),
            "entry 'slow.pdf': too much compressed data before its first bytes"
        );

        // The same trick well below the budget is a valid (if odd) entry.
        let mut short = EMPTY_BLOCK.repeat(100);
        short.extend_from_slice(&final_block);
        let mut zip = build_zip(&[stored("fine.pdf", &short)]);
        patch_headers(&mut zip, 8, 10, |_| 8);
        assert_eq!(check(&zip).map(|s| s.files), Ok(1));
    }

    #[test]
    fn hostile_entry_names_stay_on_one_line() {
        let name = format!("a\nb\"\u{7}{}.docx", "x".repeat(500));
        let zip = build_zip(&[stored(&name, PDF)]);
        let msg = check(&zip).unwrap_err().to_string();
        assert!(!msg.contains('\n') && !msg.contains('\u{7}'), "{msg}");
        assert!(msg.starts_with("entry 'a\\nb\\\"\\u{7}xxx"), "{msg}");
        assert!(msg.len() < 400, "{}", msg.len());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
            for declared in [
                DeclaredType::Pdf,
                DeclaredType::Audio,
                DeclaredType::Image,
                DeclaredType::Video,
                DeclaredType::Zip,
            ] {
                let _ = check_magic(declared, &bytes);
            }
            let _ = check_zip(Cursor::new(&bytes));
        }

        #[test]
        fn damaged_archives_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut zip = build_zip(&[
                Dir("d/"),
                stored("d/a.pdf", PDF),
                deflated("b.png", PNG),
                deflated("c.mp4", MP4),
            ]);
            for (at, byte) in edits {
                let i = at.index(zip.len());
                zip[i] = byte;
            }
            let len = zip.len();
            let _ = check_zip(Cursor::new(&zip));
            let _ = check_zip(Cursor::new(&zip[..cut.index(len)]));
        }

        #[test]
        fn random_content_type_never_panics(value in ".{0,64}") {
            let _ = parse_content_type(&value);
        }
    }
}
