//! Forgetting an integration's secrets: logging out (`mtp auth logout ID`, `POST /api/auth/ID/logout`).
//! The host owns every plugin's secret store, so it can delete a login without calling the plugin: no
//! ABI change, and a plugin that cannot be asked (disabled in `.env`, misbehaving) is logged out too.

use rusqlite::params;

use super::{StateError, StateStore};

impl StateStore {
    /// Deletes every secret `plugin` keeps (its tokens); its state (resumable uploads, account names)
    /// stays. Answers how many were deleted (0: it was not logged in).
    pub fn delete_secrets(&self, plugin: &str) -> Result<usize, StateError> {
        let conn = self.lock();
        conn.execute(
            "DELETE FROM plugin_secret WHERE plugin = ?1",
            params![plugin],
        )
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_one_plugins_secrets_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put("a", "token", "t1", true).unwrap();
        store.put("a", "refresh", "t2", true).unwrap();
        store.put("a", "account", "ann", false).unwrap();
        store.put("b", "token", "t3", true).unwrap();
        assert_eq!(store.delete_secrets("a").unwrap(), 2);
        assert_eq!(store.get("a", "token", true).unwrap(), None);
        assert_eq!(store.get("a", "refresh", true).unwrap(), None);
        assert_eq!(
            store.get("a", "account", false).unwrap().as_deref(),
            Some("ann")
        );
        assert_eq!(
            store.get("b", "token", true).unwrap().as_deref(),
            Some("t3")
        );
        assert_eq!(store.delete_secrets("a").unwrap(), 0);
    }
}
