//! keyward-agent
