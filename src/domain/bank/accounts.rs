//! The exchange's bank accounts (`credit_accounts`) and the amounts they take: the rules every
//! way of moving money in (a registration, a simulated transfer, a fixture, the console) shares.

use crate::amount::Amount;
use crate::config::Settings;
use crate::error::ApiError;
use crate::payto::Payto;

/// Why an amount is refused: the one amount rule, which every way of moving money in or out
/// (a registration, a transfer of the gateway, a simulated one, a fixture, the console) applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountRefused {
    /// Not in the bank's currency.
    Currency { given: String, expected: String },
    /// Zero.
    NotPositive,
}

/// The amount rule: in the bank's currency, and more than zero.
pub fn amount_refused(settings: &Settings, amount: &Amount) -> Option<AmountRefused> {
    if amount.currency() != settings.currency {
        return Some(AmountRefused::Currency {
            given: amount.currency().to_owned(),
            expected: settings.currency.clone(),
        });
    }
    amount.is_zero().then_some(AmountRefused::NotPositive)
}

/// An amount the bank takes, in field `field`: the amount rule, refused as a malformed field
/// (400, code 26), as the prepared-transfer API and the simulation routes answer.
pub fn check_amount(settings: &Settings, field: &str, amount: &Amount) -> Result<(), ApiError> {
    match amount_refused(settings, amount) {
        None => Ok(()),
        Some(AmountRefused::Currency { given, expected }) => {
            Err(ApiError::field(field, format!("currency {given} is not the bank's {expected}")))
        }
        Some(AmountRefused::NotPositive) => Err(ApiError::field(field, "must be positive")),
    }
}

/// The same rule as the Wire Gateway answers it: another currency is 400 with code 30
/// (`GENERIC_CURRENCY_MISMATCH`, what the exchange's bank client expects; `docs/wire-gateway.md`).
pub fn check_gateway_amount(
    settings: &Settings,
    field: &'static str,
    amount: &Amount,
) -> Result<(), ApiError> {
    match amount_refused(settings, amount) {
        None => Ok(()),
        Some(AmountRefused::Currency { given, expected }) => {
            Err(ApiError::CurrencyMismatch { field, given, expected })
        }
        Some(AmountRefused::NotPositive) => Err(ApiError::field(field, "must be positive")),
    }
}

/// The account rule: `account` names the configured credit account whose normalized payto URI
/// is its own ([`Payto::same_account`]: the receiver name, a BIC and the case of the scheme,
/// method and x-taler-bank host do not matter). Its index in `credit_accounts` (and in
/// `account_names`), for every lookup: a registration's account, a transfer's, the Wire
/// Gateway's ([`super::gateway::account_of`]).
pub fn position(settings: &Settings, account: &Payto) -> Option<usize> {
    settings.credit_accounts.iter().position(|a| a.same_account(account))
}

/// The configured credit account that `account` names ([`position`]), as configured: with its
/// `receiver-name`, which payment codes need.
pub fn find(settings: &Settings, account: &Payto) -> Option<Payto> {
    position(settings, account).and_then(|i| settings.credit_accounts.get(i)).cloned()
}

/// [`find`], or the error that names an account that is not the bank's.
pub fn credit_account(settings: &Settings, account: &Payto) -> Result<Payto, ApiError> {
    find(settings, account).ok_or_else(|| ApiError::BankUnknownCreditor(account.full().to_owned()))
}

/// The account that receives a transfer naming none: the first configured.
pub fn default_credit_account(settings: &Settings) -> String {
    settings.credit_accounts.first().map(|a| a.full().to_owned()).unwrap_or_default()
}
