//! Where bytes come from: directories and files, standard input, git history, container images,
//! and archives found in any of them.

pub mod archive;
pub mod dir;
pub mod git;
pub mod image;
pub mod stdin;
