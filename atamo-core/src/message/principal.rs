use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, TenantId, UserId};

/// Who an event is published for: a user, the groups the user belongs to and an optional tenant.
///
/// Rules match on these, and agents act on behalf of the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupId>,
    /// The tenant the user belongs to, if the hub serves several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
}

impl Principal {
    /// A user with no groups and no tenant.
    pub fn user(user: impl Into<UserId>) -> Self {
        Self {
            user: user.into(),
            groups: Vec::new(),
            tenant: None,
        }
    }

    /// Adds a group.
    #[must_use]
    pub fn in_group(mut self, group: impl Into<GroupId>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn in_tenant(mut self, tenant: impl Into<TenantId>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Whether the user belongs to `group`.
    pub fn is_in(&self, group: &GroupId) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
