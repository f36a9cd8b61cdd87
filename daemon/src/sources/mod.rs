//! Where bytes come from: directories and files, standard input.

pub mod archive;
pub mod dir;
pub mod git;
pub mod image;
pub mod stdin;
