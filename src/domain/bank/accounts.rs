//! The exchange's bank accounts (`credit_accounts`) and the amounts they take: the rules every
//! way of moving money in (a registration, a simulated transfer, a fixture, the console) shares.

use crate::amount::Amount;
use crate::config::Settings;
use crate::error::ApiError;
use crate::payto::Payto;

/// An amount the bank takes, in field `field`: in the bank's currency, and more than zero.
pub fn check_amount(settings: &Settings, field: &str, amount: &Amount) -> Result<(), ApiError> {
    if amount.currency() != settings.currency {
        return Err(ApiError::field(
            field,
            format!("currency {} is not the bank's {}", amount.currency(), settings.currency),
        ));
    }
    if amount.is_zero() {
        return Err(ApiError::field(field, "must be positive"));
    }
    Ok(())
}

/// The configured credit account that `account` names (compared normalized), as configured:
/// with its `receiver-name`, which payment codes need.
pub fn find(settings: &Settings, account: &Payto) -> Option<Payto> {
    settings.credit_accounts.iter().find(|a| a.normalized() == account.normalized()).cloned()
}

/// [`find`], or the error that names an account that is not the bank's.
pub fn credit_account(settings: &Settings, account: &Payto) -> Result<Payto, ApiError> {
    find(settings, account).ok_or_else(|| ApiError::BankUnknownCreditor(account.full().to_owned()))
}

/// The account that receives a transfer naming none: the first configured.
pub fn default_credit_account(settings: &Settings) -> String {
    settings.credit_accounts.first().map(|a| a.full().to_owned()).unwrap_or_default()
}
