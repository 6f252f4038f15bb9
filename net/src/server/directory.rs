//! The [`MemberDirectory`] a server uses when none is given: what this member knows on its
//! own, its advertised client URLs. Other members' client URLs resolve once the replicated
//! member registry provides them; until then a follower cannot forward leader-only lease
//! requests and answers them "cannot forward to the leader" (Unavailable), so clients retry
//! at another member.

use sextant_core::NodeId;

use crate::grpc::MemberDirectory;

pub struct LocalDirectory {
    pub member_id: NodeId,
    pub client_urls: Vec<String>,
}

impl MemberDirectory for LocalDirectory {
    fn client_urls(&self, id: NodeId) -> Vec<String> {
        if id == self.member_id {
            self.client_urls.clone()
        } else {
            Vec::new()
        }
    }
}
