//! Windows builds of ois: libhivex is not linked (Debian has no mingw build of it), so a hive
//! cannot be opened and no handle ever exists. Same API as `hivex.rs`; opening says why.

use std::convert::Infallible;
use std::io;
use std::path::Path;

pub use super::names::{names_equal, upcase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value(usize);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    pub name: String,
    pub kind: u32,
    pub bytes: Vec<u8>,
}

/// Cannot be made: every method is unreachable.
pub struct Hivex {
    never: Infallible,
}

impl Hivex {
    pub fn open(path: &Path, _write: bool) -> io::Result<Hivex> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "cannot open the hive {}: this Windows build of ois has no registry editor (it needs libhivex, which is built for Linux only); apply updates with registry changes on a Linux servicing host",
                path.display()
            ),
        ))
    }

    pub fn root(&self) -> io::Result<Node> {
        match self.never {}
    }
    pub fn child(&self, _: Node, _: &str) -> io::Result<Option<Node>> {
        match self.never {}
    }
    pub fn find(&self, _: &str) -> io::Result<Option<Node>> {
        match self.never {}
    }
    pub fn add_child(&mut self, _: Node, _: &str) -> io::Result<Node> {
        match self.never {}
    }
    pub fn delete(&mut self, _: Node) -> io::Result<()> {
        match self.never {}
    }
    pub fn values(&self, _: Node) -> io::Result<Vec<Value>> {
        match self.never {}
    }
    pub fn value_name(&self, _: Value) -> io::Result<String> {
        match self.never {}
    }
    pub fn value_type(&self, _: Value) -> io::Result<(u32, usize)> {
        match self.never {}
    }
    pub fn stored_values(&self, _: Node) -> io::Result<Vec<StoredValue>> {
        match self.never {}
    }
    pub fn set_values(&mut self, _: Node, _: &[StoredValue]) -> io::Result<()> {
        match self.never {}
    }
    pub fn commit(&mut self, _: &Path) -> io::Result<()> {
        match self.never {}
    }
}
