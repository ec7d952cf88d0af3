//! The event catalog: canonical type names (the contract), the guide's aliases, and a
//! sample payload for each type shaped like the platform's own.

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub struct EventType {
    pub name: &'static str,
    pub group: &'static str,
    pub description: &'static str,
}

macro_rules! catalog {
    ($($group:literal: [$($name:literal => $desc:literal),+ $(,)?]),+ $(,)?) => {
        pub const TYPES: &[EventType] = &[
            $($(EventType { name: $name, group: $group, description: $desc },)+)+
        ];
    };
}

catalog! {
    "Contacts": [
        "ContactCreate" => "A new contact was added",
        "ContactUpdate" => "A contact's fields were modified",
        "ContactDelete" => "A contact was removed",
        "ContactDndUpdate" => "A contact's do-not-disturb status changed",
        "ContactTagUpdate" => "Tags were added or removed from a contact",
    ],
    "Conversations": [
        "InboundMessage" => "A message was received from a contact",
        "OutboundMessage" => "A message was sent to a contact",
        "ConversationUnreadUpdate" => "A conversation has unread messages",
        "ProviderOutboundMessage" => "A message was sent via an external provider",
    ],
    "Appointments": [
        "AppointmentCreate" => "A new appointment was booked",
        "AppointmentUpdate" => "An appointment was modified",
        "AppointmentDelete" => "An appointment was cancelled or removed",
    ],
    "Opportunities": [
        "OpportunityCreate" => "A new opportunity was created",
        "OpportunityUpdate" => "An opportunity was modified",
        "OpportunityDelete" => "An opportunity was removed",
        "OpportunityStageUpdate" => "An opportunity moved to a new pipeline stage",
        "OpportunityStatusUpdate" => "An opportunity's status changed",
        "OpportunityMonetaryValueUpdate" => "An opportunity's monetary value changed",
        "OpportunityAssignedToUpdate" => "An opportunity was reassigned",
    ],
    "Payments": [
        "InvoiceCreate" => "A new invoice was generated",
        "InvoiceSent" => "An invoice was sent to a contact",
        "InvoicePaid" => "An invoice was paid in full",
        "InvoicePartiallyPaid" => "A partial payment was received",
        "InvoiceVoid" => "An invoice was voided",
        "InvoiceUpdate" => "An invoice was modified",
        "InvoiceDelete" => "An invoice was deleted",
        "OrderCreate" => "A new order was placed",
        "OrderStatusUpdate" => "An order's fulfilment status changed",
    ],
    "Products and prices": [
        "ProductCreate" => "A new product was added",
        "ProductUpdate" => "A product was modified",
        "ProductDelete" => "A product was removed",
        "PriceCreate" => "A new price was added to a product",
        "PriceUpdate" => "A price was modified",
        "PriceDelete" => "A price was removed",
    ],
    "Tasks": [
        "TaskCreate" => "A new task was created",
        "TaskComplete" => "A task was marked complete",
        "TaskDelete" => "A task was removed",
    ],
    "Notes": [
        "NoteCreate" => "A note was added to a contact",
        "NoteUpdate" => "A note was modified",
        "NoteDelete" => "A note was removed",
    ],
    "Sub-accounts and users": [
        "UserCreate" => "A new user was added",
        "LocationCreate" => "A new sub-account was provisioned",
        "LocationUpdate" => "A sub-account's details were modified",
    ],
    "Objects and associations": [
        "ObjectSchemaCreate" => "A new custom object schema was defined",
        "ObjectSchemaUpdate" => "A custom object schema was modified",
        "RecordCreate" => "A new custom object record was created",
        "RecordUpdate" => "A custom object record was modified",
        "RecordDelete" => "A custom object record was removed",
        "RelationCreate" => "A relation between records was created",
        "RelationDelete" => "A relation was removed",
        "AssociationCreate" => "An association was created",
        "AssociationUpdate" => "An association was modified",
        "AssociationDelete" => "An association was removed",
    ],
    "App lifecycle": [
        "AppInstall" => "Your app was installed in a location",
        "AppUninstall" => "Your app was removed from a location",
        "ExternalAuthConnected" => "An external authentication provider was connected",
        "PlanChange" => "A location's plan or subscription changed",
        "CampaignStatusUpdate" => "A campaign's status changed",
    ],
    "Forms": [
        "FormSubmitted" => "A form was submitted",
    ],
}

/// The guide's names for the same events (accepted wherever a type is).
pub const ALIASES: &[(&str, &str)] = &[
    ("ContactCreated", "ContactCreate"),
    ("ContactUpdated", "ContactUpdate"),
    ("ContactDeleted", "ContactDelete"),
    ("OpportunityStageChanged", "OpportunityStageUpdate"),
    ("AppointmentBooked", "AppointmentCreate"),
    ("AppointmentCancelled", "AppointmentDelete"),
    ("PaymentReceived", "InvoicePaid"),
    ("FormSubmit", "FormSubmitted"),
];

/// The location id used by samples and the demo.
pub const SAMPLE_LOCATION: &str = "ve9EPM428h8vShlRW1KT";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type '{given}'{}", suggestion_text(.suggestions))]
pub struct UnknownType {
    pub given: String,
    pub suggestions: Vec<&'static str>,
}

fn suggestion_text(s: &[&str]) -> String {
    if s.is_empty() {
        " (see `hookctl catalog` for the list)".to_string()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// Key for matching loosely: the guide writes names with spaces ("Payment received").
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The canonical name of a type given as canonical, alias, or in another case or spacing.
pub fn resolve(name: &str) -> Result<&'static str, UnknownType> {
    let key = fold(name);
    if let Some(t) = all().find(|t| fold(t.name) == key) {
        return Ok(t.name);
    }
    if let Some((_, canon)) = ALIASES.iter().find(|(a, _)| fold(a) == key) {
        return Ok(canon);
    }
    Err(UnknownType {
        given: name.to_string(),
        suggestions: close_names(name),
    })
}

/// Every type: the platform's, then hookctl's own operational ones.
pub fn all() -> impl Iterator<Item = &'static EventType> {
    TYPES.iter().chain(crate::ops::TYPES)
}

/// Up to three catalog names closest to what was typed.
pub fn close_names(name: &str) -> Vec<&'static str> {
    let key = fold(name);
    let mut scored: Vec<(f64, &'static str)> = all()
        .map(|t| t.name)
        .chain(ALIASES.iter().map(|(a, _)| *a))
        .map(|n| (strsim::jaro_winkler(&key, &fold(n)), n))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<&'static str> = Vec::new();
    for (_, n) in scored {
        if !out.contains(&n) {
            out.push(n);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

fn samples() -> &'static BTreeMap<String, serde_json::Value> {
    static SAMPLES: OnceLock<BTreeMap<String, serde_json::Value>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        serde_json::from_str(include_str!("samples.json"))
            .expect("samples.json is part of the binary and checked by a test")
    })
}

/// The sample `data` of a canonical type: the event's own fields.
pub fn sample(name: &str) -> Option<serde_json::Value> {
    samples()
        .get(name)
        .cloned()
        .or_else(|| crate::ops::sample(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_sample_and_nothing_else_does() {
        assert_eq!(TYPES.len(), 59);
        for t in TYPES {
            let s = sample(t.name).unwrap_or_else(|| panic!("no sample for {}", t.name));
            assert!(s.is_object(), "{} sample is not an object", t.name);
        }
        assert_eq!(samples().len(), TYPES.len());
    }

    #[test]
    fn aliases_and_loose_spellings_resolve() {
        assert_eq!(resolve("ContactCreated"), Ok("ContactCreate"));
        assert_eq!(resolve("Payment received"), Ok("InvoicePaid"));
        assert_eq!(
            resolve("opportunity stage changed"),
            Ok("OpportunityStageUpdate")
        );
        assert_eq!(resolve("Appointment booked"), Ok("AppointmentCreate"));
        assert_eq!(resolve("Form submitted"), Ok("FormSubmitted"));
        assert_eq!(resolve("invoicepaid"), Ok("InvoicePaid"));
        for (alias, canon) in ALIASES {
            assert!(TYPES.iter().any(|t| t.name == *canon), "{alias}");
        }
    }

    #[test]
    fn unknown_types_name_close_matches() {
        let err = resolve("ContactCreat").unwrap_err();
        assert!(err.suggestions.contains(&"ContactCreate"), "{err}");
        assert!(err.to_string().contains("did you mean"));
        let err = resolve("Zzzzz").unwrap_err();
        assert!(err.suggestions.is_empty());
    }
}
