//! Where bytes come from: directories and files, standard input.

pub mod dir;
pub mod stdin;
