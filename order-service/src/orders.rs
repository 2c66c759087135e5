//! Orders, the domain: the request as a client sends it, the checked [`NewOrder`] (parse,
//! don't validate: a `NewOrder` has items, sane quantities and a total that fits), and
//! the stored [`Order`] with its saga status and history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::order_history::HistoryEntry;
use crate::status::OrderStatus;

/// Most line items one order may have.
pub const MAX_ITEMS: usize = 100;
/// Longest SKU, in characters.
pub const MAX_SKU_CHARS: usize = 64;
/// Largest quantity of one line item.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// `POST /orders` as sent. Fields are optional here so that every missing one is
/// reported at once; unknown fields are refused (a typo must not pass silently). The
/// schema says what a valid order is: every field is required there.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_id": 1, "items": [{"sku": "MUG-1", "quantity": 2, "unit_price_cents": 450}]}))]
pub struct OrderRequest {
    /// The ordering user: a positive integer, with a live snapshot here.
    #[schema(required = true, nullable = false, minimum = 1)]
    pub user_id: Option<i64>,
    /// The line items: 1 to 100.
    #[schema(required = true, nullable = false, min_items = 1, max_items = 100)]
    pub items: Option<Vec<ItemRequest>>,
}

/// One line item as sent. Each line total and the order total must fit in 64 bits of
/// cents.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// Stock keeping unit: 1 to 64 characters after trimming, no control characters.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub sku: Option<String>,
    /// How many: 1 to 1,000,000.
    #[schema(required = true, nullable = false, minimum = 1, maximum = 1_000_000)]
    pub quantity: Option<i64>,
    /// Price of one, in cents: 0 or more.
    #[schema(required = true, nullable = false, minimum = 0)]
    pub unit_price_cents: Option<i64>,
}

/// One checked line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineItem {
    /// Stock keeping unit: 1 to [`MAX_SKU_CHARS`] characters, no control characters.
    pub sku: String,
    /// 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
    /// Zero or more cents.
    pub unit_price_cents: i64,
}

/// A checked order, not stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The ordering user (whether the user exists is checked when storing).
    pub user_id: i64,
    /// At least one, at most [`MAX_ITEMS`].
    pub items: Vec<LineItem>,
    /// The sum of quantity × unit price, which fits in an `i64`.
    pub total_cents: i64,
}

/// A stored order, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    /// Assigned by the database.
    pub id: i64,
    /// The ordering user.
    pub user_id: i64,
    /// The line items, in the order sent.
    pub items: Vec<LineItem>,
    /// The sum of quantity × unit price.
    pub total_cents: i64,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Where it is in the saga: `pending`, then `confirmed` or `cancelled`.
    pub status: OrderStatus,
    /// Counts its transitions from 1 (`pending`).
    pub version: u64,
    /// Each transition, oldest first, with its time and the event that caused it.
    pub history: Vec<HistoryEntry>,
}

/// Every problem of a request, by field path (`items[2].quantity`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub BTreeMap<String, String>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.insert(field.into(), problem.into());
    }
}

impl NewOrder {
    /// Checks every field, reporting all problems at once.
    pub fn parse(request: OrderRequest) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let user_id = match request.user_id {
            None => {
                problems.add("user_id", "is required");
                0
            }
            Some(id) if id < 1 => {
                problems.add("user_id", "must be a positive integer");
                0
            }
            Some(id) => id,
        };
        let items = match request.items {
            None => {
                problems.add("items", "is required");
                Vec::new()
            }
            Some(items) if items.is_empty() => {
                problems.add("items", "must contain at least one item");
                Vec::new()
            }
            Some(items) if items.len() > MAX_ITEMS => {
                problems.add("items", format!("must contain at most {MAX_ITEMS} items"));
                Vec::new()
            }
            Some(items) => parse_items(items, &mut problems),
        };
        let total_cents = total(&items);
        if total_cents.is_none() && problems.0.is_empty() {
            problems.add("items", "the order total does not fit in 64 bits of cents");
        }
        match total_cents {
            Some(total_cents) if problems.0.is_empty() => Ok(Self {
                user_id,
                items,
                total_cents,
            }),
            _ => Err(problems),
        }
    }
}

fn parse_items(items: Vec<ItemRequest>, problems: &mut Problems) -> Vec<LineItem> {
    let mut parsed = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let field = |name: &str| format!("items[{index}].{name}");
        let sku = check_sku(item.sku).map_err(|p| problems.add(field("sku"), p));
        let quantity = match item.quantity {
            None => Err("is required".to_owned()),
            Some(q) if q < 1 => Err("must be at least 1".to_owned()),
            Some(q) if q > MAX_QUANTITY => Err(format!("must be at most {MAX_QUANTITY}")),
            Some(q) => Ok(q),
        }
        .map_err(|p| problems.add(field("quantity"), p));
        let price = match item.unit_price_cents {
            None => Err("is required"),
            Some(p) if p < 0 => Err("must not be negative"),
            Some(p) => Ok(p),
        }
        .map_err(|p| problems.add(field("unit_price_cents"), p));
        if let (Ok(sku), Ok(quantity), Ok(unit_price_cents)) = (sku, quantity, price) {
            if quantity.checked_mul(unit_price_cents).is_none() {
                problems.add(
                    format!("items[{index}]"),
                    "quantity × unit_price_cents does not fit in 64 bits",
                );
            }
            parsed.push(LineItem {
                sku,
                quantity,
                unit_price_cents,
            });
        }
    }
    parsed
}

fn check_sku(sku: Option<String>) -> Result<String, String> {
    let sku = sku.ok_or("is required")?;
    let trimmed = sku.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if trimmed.chars().count() > MAX_SKU_CHARS {
        return Err(format!("must be at most {MAX_SKU_CHARS} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed.to_owned())
}

/// The order total, `None` if it overflows.
fn total(items: &[LineItem]) -> Option<i64> {
    items.iter().try_fold(0i64, |sum, item| {
        sum.checked_add(item.quantity.checked_mul(item.unit_price_cents)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: serde_json::Value) -> Result<NewOrder, Problems> {
        NewOrder::parse(serde_json::from_value(body).unwrap())
    }

    fn problems(body: serde_json::Value) -> BTreeMap<String, String> {
        parse(body).unwrap_err().0
    }

    #[test]
    fn a_valid_order_gets_its_total() {
        let order = parse(json!({"user_id": 7, "items": [
            {"sku": " A-1 ", "quantity": 2, "unit_price_cents": 250},
            {"sku": "B", "quantity": 1, "unit_price_cents": 0},
        ]}))
        .unwrap();
        assert_eq!(order.user_id, 7);
        assert_eq!(order.total_cents, 500);
        assert_eq!(order.items[0].sku, "A-1");
    }

    #[test]
    fn every_field_problem_is_listed_at_once() {
        let found = problems(json!({"user_id": 0, "items": [
            {"sku": "", "quantity": 0, "unit_price_cents": -1},
            {"sku": "x".repeat(65), "quantity": -3, "unit_price_cents": 5},
            {"sku": "ok\u{7}", "quantity": MAX_QUANTITY + 1},
        ]}));
        let expected = [
            ("user_id", "must be a positive integer"),
            ("items[0].sku", "must not be empty"),
            ("items[0].quantity", "must be at least 1"),
            ("items[0].unit_price_cents", "must not be negative"),
            ("items[1].sku", "must be at most 64 characters"),
            ("items[1].quantity", "must be at least 1"),
            ("items[2].sku", "must not contain control characters"),
            ("items[2].quantity", "must be at most 1000000"),
            ("items[2].unit_price_cents", "is required"),
        ];
        for (field, problem) in expected {
            assert_eq!(
                found.get(field).map(String::as_str),
                Some(problem),
                "{field}: {found:?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:?}");
    }

    #[test]
    fn missing_fields_and_empty_items_are_reported() {
        let found = problems(json!({}));
        assert_eq!(found["user_id"], "is required");
        assert_eq!(found["items"], "is required");
        let found = problems(json!({"user_id": 1, "items": []}));
        assert_eq!(found["items"], "must contain at least one item");
    }

    #[test]
    fn too_many_items_are_refused() {
        let item = json!({"sku": "a", "quantity": 1, "unit_price_cents": 1});
        let items = vec![item; MAX_ITEMS + 1];
        let found = problems(json!({"user_id": 1, "items": items}));
        assert_eq!(found["items"], "must contain at most 100 items");
    }

    #[test]
    fn a_line_or_total_that_overflows_is_refused() {
        let found = problems(json!({"user_id": 1, "items": [
            {"sku": "a", "quantity": 1_000_000, "unit_price_cents": i64::MAX / 2},
        ]}));
        assert!(found["items[0]"].contains("64 bits"), "{found:?}");
        let found = problems(json!({"user_id": 1, "items": [
            {"sku": "a", "quantity": 1, "unit_price_cents": i64::MAX},
            {"sku": "b", "quantity": 1, "unit_price_cents": 1},
        ]}));
        assert!(found["items"].contains("64 bits"), "{found:?}");
    }

    #[test]
    fn unknown_fields_are_refused_by_the_reader() {
        let result = serde_json::from_value::<OrderRequest>(json!({"user_id": 1, "itemz": []}));
        assert!(result.unwrap_err().to_string().contains("itemz"));
    }
}
