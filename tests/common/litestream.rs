//! Litestream and a local S3 server (moto), as the replication tests (`tests/replication.rs`) and
//! `loadgen replicate` (`examples/loadgen/replicate.rs`) run them.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `litestream` without the environment's AWS, Litestream and taler-lite settings (a set
/// `AWS_CA_BUNDLE` makes its S3 client refuse a custom endpoint), with moto's any-credentials.
pub fn litestream() -> Command {
    let mut command = Command::new("litestream");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AWS_") || name.starts_with("TALER_LITE_") || name.starts_with("LITESTREAM_") {
            command.env_remove(name);
        }
    }
    command.env("LITESTREAM_ACCESS_KEY_ID", "test").env("LITESTREAM_SECRET_ACCESS_KEY", "test");
    command
}

/// `moto_server` on a free loopback port: the process and its endpoint (`http://127.0.0.1:PORT`).
/// The caller creates its bucket (`PUT {endpoint}/{bucket}`).
pub fn start_moto() -> (Reaped, String) {
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server (pip install 'moto[server]')");
    let (tx, rx) = std::sync::mpsc::channel();
    let outs: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("piped stdout")),
        Box::new(child.stderr.take().expect("piped stderr")),
    ];
    for out in outs {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
            }
        });
    }
    let endpoint =
        rx.recv_timeout(Duration::from_secs(60)).expect("moto_server did not say where it listens");
    (Reaped(child), endpoint)
}
