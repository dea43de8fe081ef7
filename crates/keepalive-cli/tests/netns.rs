//! Issue 4: dead peer, peer reboot, NAT idle eviction, unacknowledged data, in network namespaces (being written).
