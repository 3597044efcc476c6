//! Opening a file that the operator names (a fixture file, an upload's file): it must be a
//! regular file, and opening it must not hang.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens a file that must be a regular one. A FIFO, device, socket or folder is refused,
/// and the open itself cannot block (`O_NONBLOCK`: opening a FIFO nobody writes would
/// hang start-up, deaf to signals and stdin, for ever).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, format!("is {what}, not a regular file")))
}
