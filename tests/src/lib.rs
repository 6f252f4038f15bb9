//! End-to-end tests of real `sextant` processes on 127.0.0.x. The suites arrive with the node
//! issue (a 3-node cluster of real processes) and later issues; this crate fixes the layout.
