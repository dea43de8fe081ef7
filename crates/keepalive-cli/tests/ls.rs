//! keepalive ls and attach (being written).
