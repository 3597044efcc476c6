//! The two secrets a zero-configuration start needs: the exchange's master key and the
//! operator token.
//!
//! Each is taken from the settings when given there, else read from its file, else made on
//! first start and saved in that file (mode 0600, synced) so that a restart finds the same
//! one: a development server keeps its identity and its operator keeps their token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::values::Token;
use super::{ConfigError, Settings, bad};
use crate::crypto::{EddsaPrivateKey, EddsaPublicKey};

/// Writes a new secret file, readable by its owner only, synced to disk.
pub fn create_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    // create_new: never overwrite a key that may be the only copy.
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Reads a master private key file (base32 seed, one line).
pub fn read_master_key(path: &Path) -> Result<EddsaPrivateKey, ConfigError> {
    let text =
        fs::read_to_string(path).map_err(|e| bad("master_key_file", format!("{}: {e}", path.display())))?;
    text.trim()
        .parse::<EddsaPrivateKey>()
        .map_err(|e| bad("master_key_file", format!("{}: not a base32 Ed25519 seed ({e})", path.display())))
}

/// The master public key the server checks signatures with, and whether a
/// private key file was created just now.
pub fn master_key(settings: &Settings) -> Result<(EddsaPublicKey, bool), ConfigError> {
    let path = &settings.master_key_file;
    if let Some(public) = settings.master_public_key {
        // A production exchange keeps its master key offline: make none here.
        if path.exists()
            && let Ok(private) = read_master_key(path)
            && private.public_key() != public
        {
            log::warn!(
                "{} does not hold the private key of the configured master public key; `offline` commands using it will sign for another key",
                path.display()
            );
        }
        return Ok((public, false));
    }
    if path.exists() {
        return Ok((read_master_key(path)?.public_key(), false));
    }
    let private = EddsaPrivateKey::generate().map_err(|e| bad("master_key_file", e))?;
    create_secret_file(path, &private.to_base32())
        .map_err(|e| bad("master_key_file", format!("cannot create {}: {e}", path.display())))?;
    Ok((private.public_key(), true))
}

/// The operator token, and whether it was created just now.
pub fn operator_token(settings: &Settings) -> Result<(String, bool), ConfigError> {
    if let Some(token) = &settings.token {
        return Ok((token.clone(), false));
    }
    let path = &settings.token_file;
    if path.exists() {
        let text =
            fs::read_to_string(path).map_err(|e| bad("token_file", format!("{}: {e}", path.display())))?;
        // The file's token obeys the same rule as one given by flag.
        let token: Token =
            text.trim().parse().map_err(|e| bad("token_file", format!("{}: {e}", path.display())))?;
        return Ok((token.into(), false));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| bad("token_file", format!("no randomness: {e}")))?;
    let token = format!("secret-token:{}", crate::base32::encode(&bytes));
    create_secret_file(path, &token)
        .map_err(|e| bad("token_file", format!("cannot create {}: {e}", path.display())))?;
    Ok((token, true))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::{FileConfig, GlobalArgs, ServeArgs};

    fn settings_in(dir: &Path, args: &ServeArgs) -> Settings {
        let global = GlobalArgs { database: Some(dir.join("db.sqlite3")), ..GlobalArgs::default() };
        Settings::resolve(&global, args, &FileConfig::default()).unwrap()
    }

    #[test]
    fn secrets_are_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_in(dir.path(), &ServeArgs::default());
        let (token, created) = operator_token(&settings).unwrap();
        assert!(created && token.starts_with("secret-token:"));
        assert_eq!(operator_token(&settings).unwrap(), (token, false));
        let (key, created) = master_key(&settings).unwrap();
        assert!(created);
        assert_eq!(master_key(&settings).unwrap(), (key, false));
        for path in [&settings.token_file, &settings.master_key_file] {
            assert_eq!(path.parent(), Some(dir.path()));
            assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_given_public_key_makes_no_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let public = EddsaPrivateKey::generate().unwrap().public_key();
        let args = ServeArgs {
            master_public_key: Some(public.to_string().parse().unwrap()),
            ..ServeArgs::default()
        };
        let settings = settings_in(dir.path(), &args);
        assert_eq!(master_key(&settings).unwrap(), (public, false));
        assert!(!settings.master_key_file.exists());
    }

    #[test]
    fn bad_secret_files_name_their_setting() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_in(dir.path(), &ServeArgs::default());
        fs::write(&settings.token_file, "short\n").unwrap();
        assert_eq!(operator_token(&settings).unwrap_err().setting, "token_file");
        fs::write(&settings.master_key_file, "not a key\n").unwrap();
        assert_eq!(master_key(&settings).unwrap_err().setting, "master_key_file");
    }
}
