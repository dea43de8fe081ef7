//! keepalive enforce (being written).
