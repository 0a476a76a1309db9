//! dockyard-core
