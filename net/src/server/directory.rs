//! The [`MemberDirectory`] a server uses unless given another: the member registry as this
//! member has applied it ([`NodeHandle::members`]), so a follower forwards leader-only lease
//! requests to the client URLs the leader published.

use sextant_core::NodeId;

use crate::grpc::MemberDirectory;
use crate::node::NodeHandle;

pub struct RegistryDirectory(pub NodeHandle);

impl MemberDirectory for RegistryDirectory {
    /// Empty until the member has started and published its client URLs.
    fn client_urls(&self, id: NodeId) -> Vec<String> {
        self.0
            .members()
            .into_iter()
            .find(|m| m.id == id)
            .map(|m| m.client_urls)
            .unwrap_or_default()
    }
}
