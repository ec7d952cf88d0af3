//! Fan-out: which subscriptions an event goes to. One rule for every backend.

/// What fan-out needs of a subscription.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub events: Option<Vec<String>>,
    pub location_id: Option<String>,
}

impl Route {
    /// From the stored columns: the events list as JSON text (NULL for every type).
    pub fn from_columns(
        id: String,
        events: Option<&str>,
        location_id: Option<String>,
    ) -> anyhow::Result<Route> {
        Ok(Route {
            id,
            events: events.map(serde_json::from_str).transpose()?,
            location_id,
        })
    }

    pub fn matches(&self, event_type: &str, location: Option<&str>) -> bool {
        // Every type (`all`) leaves out operational events: they go only where named.
        let wanted = match &self.events {
            None => !crate::ops::is_operational(event_type),
            Some(t) => t.iter().any(|t| t == event_type),
        };
        wanted
            && self
                .location_id
                .as_deref()
                .is_none_or(|l| location == Some(l))
    }
}
