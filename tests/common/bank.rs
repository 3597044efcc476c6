//! What prepared-transfer tests build and send: registrations and unregistrations.

use serde_json::{Value, json};
use taler_lite::crypto::{EddsaPrivateKey, EddsaPublicKey};

use super::{Answer, Http};

/// The exchange's account of a server started without `--credit-account`.
pub const EXCHANGE_ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";

/// A registration body: `auth` signs `account_pub`.
pub fn registration_of(
    auth: &EddsaPrivateKey,
    account_pub: &EddsaPublicKey,
    credit_account: &str,
    kind: &str,
    recurrent: bool,
    amount: &str,
) -> Value {
    json!({
        "credit_account": credit_account,
        "type": kind,
        "recurrent": recurrent,
        "credit_amount": amount,
        "alg": "EdDSA",
        "account_pub": account_pub.to_string(),
        "authorization_pub": auth.public_key().to_string(),
        "authorization_sig": auth.sign(account_pub.as_bytes()).to_string(),
    })
}

/// The common case: a one-shot reserve whose reserve key is `auth`'s own.
pub fn reserve_registration(auth: &EddsaPrivateKey, credit_account: &str, amount: &str) -> Value {
    registration_of(auth, &auth.public_key(), credit_account, "reserve", false, amount)
}

/// An unregistration body: `auth` signs `timestamp`.
pub fn unregistration(auth: &EddsaPrivateKey, timestamp: &str) -> Value {
    json!({
        "timestamp": timestamp,
        "authorization_pub": auth.public_key().to_string(),
        "authorization_sig": auth.sign(timestamp.as_bytes()).to_string(),
    })
}

impl Http {
    /// POST /taler-prepared-transfer/registration.
    pub async fn register(&self, body: &Value) -> Answer {
        self.post_json("taler-prepared-transfer/registration", body).await
    }

    /// Registers a fresh one-shot reserve of `amount` on `credit_account` (the
    /// [`reserve_registration`] of a new key): the key and the answer.
    pub async fn register_reserve(&self, credit_account: &str, amount: &str) -> (EddsaPrivateKey, Answer) {
        let auth = EddsaPrivateKey::generate().expect("key");
        let answer = self.register(&reserve_registration(&auth, credit_account, amount)).await;
        (auth, answer)
    }
}
