//! The Wire Gateway's testing routes that the exchange's own harness uses to fund reserves and
//! KYC accounts: `admin/add-incoming` (a reserve credit) and `admin/add-kycauth` (a KYC
//! authentication transfer). Both land in the incoming history of their account, with row ids
//! from the one sequence, and wake its long polls.

use serde::{Deserialize, Serialize};

use super::TransferType;
use super::gateway::{self, Direction, GatewayAccount};
use super::transfers::{self, reserve_refused};
use crate::amount::Amount;
use crate::config::Settings;
use crate::crypto::EddsaPublicKey;
use crate::error::ApiError;
use crate::store::{Durability, Store};
use crate::timestamp::Timestamp;
use crate::wakeup::Wakeups;

/// The body of `admin/add-incoming`.
#[derive(Debug, Deserialize)]
pub struct AddIncoming {
    pub amount: Amount,
    pub reserve_pub: EddsaPublicKey,
    pub debit_account: String,
}

/// The body of `admin/add-kycauth`.
#[derive(Debug, Deserialize)]
pub struct AddKycauth {
    pub amount: Amount,
    pub account_pub: EddsaPublicKey,
    pub debit_account: String,
}

/// The answer of both.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Added {
    pub row_id: i64,
    pub timestamp: Timestamp,
}

/// Credits `account_pub` on `account`, durably, and wakes the account's incoming polls. A
/// reserve key already credited, or held by a live reserve registration, is 409, code 5114
/// (reserve keys are single-use); a KYC key may be credited any number of times.
#[allow(clippy::too_many_arguments)]
pub async fn credit(
    store: &Store,
    settings: &Settings,
    wakeups: &Wakeups,
    account: &GatewayAccount,
    transfer_type: TransferType,
    amount: &Amount,
    account_pub: EddsaPublicKey,
    debit_account: &str,
    now_us: i64,
) -> Result<Added, ApiError> {
    let incoming = transfers::gateway_incoming(settings, account, amount, debit_account, now_us)?;
    let now_s = now_us.div_euclid(1_000_000);
    let row_id = store
        .write(Durability::Durable, move |tx| {
            if let Some(why) = reserve_refused(tx, transfer_type, &account_pub, now_s)? {
                return Err(ApiError::BankDuplicateReservePub(why));
            }
            Ok(transfers::credit(tx, &incoming, transfer_type, &account_pub, None)?)
        })
        .await?;
    wakeups.wake(&gateway::channel(&account.name, Direction::Incoming));
    Ok(Added { row_id, timestamp: Timestamp::from_unix_micros(now_us) })
}
