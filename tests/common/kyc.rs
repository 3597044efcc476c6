//! What bulk KYC tests build: body hashes, the third party's signature, ZIP archives.

use std::io::Write;

use sha2::{Digest, Sha512};
use taler_lite::crypto::{EddsaPrivateKey, ExternKycDataBulkBindingPS, HashCode, SignedStruct};
use taler_lite::payto::Payto;

use super::{Answer, Http, TestApp, TestServer, spawn_app};

/// The customer most uploads are about.
pub const CUSTOMER: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika%20Mustermann";

/// SHA-512 of a body, as `h_body`.
pub fn body_hash(body: &[u8]) -> HashCode {
    let digest: [u8; 64] = Sha512::digest(body).into();
    HashCode::from_bytes(digest)
}

/// `Taler-Extern-Signature` of an upload of `h_body` about `payto`.
pub fn upload_signature(key: &EddsaPrivateKey, h_body: HashCode, payto: &str) -> String {
    let payto: Payto = payto.parse().unwrap();
    ExternKycDataBulkBindingPS { h_body, h_payto: payto.full_hash() }.sign(key).to_string()
}

/// POST /kyc-bulk/{party} at `base_url`, signed by `party` over `h_body` about `customer`;
/// the caller adds the body and any other header (`If-None-Match`, `Content-Length`).
pub fn signed_upload(
    client: &reqwest::Client,
    base_url: &str,
    party: &EddsaPrivateKey,
    customer: &str,
    content_type: &str,
    h_body: HashCode,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{base_url}kyc-bulk/{}", party.public_key()))
        .header("Content-Type", content_type)
        .header("Taler-Customer-Payto", customer)
        .header("Taler-Extern-Signature", upload_signature(party, h_body, customer))
}

/// `--extern-key` for `party`, named `Test Party`.
pub fn party_arg(party: &EddsaPrivateKey) -> String {
    format!("{}=Test Party", party.public_key())
}

/// A fresh third party and a server (the binary) that knows it, with `extra` flags.
pub fn server_with_party(extra: &[&str]) -> (TestServer, EddsaPrivateKey) {
    let party = EddsaPrivateKey::generate().unwrap();
    let server = TestServer::start(&[&["--extern-key", &party_arg(&party)][..], extra].concat());
    (server, party)
}

/// [`server_with_party`], the server in this process.
pub async fn app_with_party(extra: &[&str]) -> (TestApp, EddsaPrivateKey) {
    let party = EddsaPrivateKey::generate().unwrap();
    (spawn_app(&[&["--extern-key", &party_arg(&party)][..], extra].concat()).await, party)
}

/// A ZIP archive of `entries` (name, bytes), deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

impl Http {
    /// `POST /kyc-bulk/{party}` of `body` as `content_type`, signed by `party` about `customer`;
    /// the caller may add headers (`If-None-Match`) before sending it.
    pub fn upload_request(
        &self,
        party: &EddsaPrivateKey,
        customer: &str,
        content_type: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        signed_upload(&self.client, &self.url, party, customer, content_type, body_hash(body))
            .body(body.to_vec())
    }

    /// [`Http::upload_request`], sent.
    pub async fn upload(
        &self,
        party: &EddsaPrivateKey,
        customer: &str,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        self.send(self.upload_request(party, customer, content_type, body)).await
    }

    /// [`Http::upload`] with the body's hash announced in `If-None-Match`, as the CLI sends it:
    /// the server checks the signature before it reads the body.
    pub async fn upload_with_hash(
        &self,
        party: &EddsaPrivateKey,
        customer: &str,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let request = self.upload_request(party, customer, content_type, body);
        self.send(request.header("If-None-Match", body_hash(body).to_string())).await
    }
}
