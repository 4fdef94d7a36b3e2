//! What Street View costs: Google's 2025 price list, free monthly caps and volume bands.
//!
//! Since 2025-03-01 the $200 monthly credit is gone; each SKU has a free monthly cap instead,
//! and volume bands run to 5 M+. Prices are exact integers of micro-USD per event. Bands count
//! the **total** monthly volume and the free cap fills the bottom of the first band, so
//! 100,000 static images cost 90,000 × $0.007 = $630.
//!
//! | SKU | category | free/month | ≤100k | ≤500k | ≤1M | ≤5M | 5M+ (USD per 1,000) |
//! |---|---|---|---|---|---|---|---|
//! | Static Street View (Static API image) | Essentials | 10,000 | 7.00 | 5.60 | 4.20 | 2.10 | 0.53 |
//! | Dynamic Street View (Maps JS `StreetViewPanorama`) | Pro | 5,000 | 14.00 | 11.20 | 8.40 | 4.20 | 1.05 |
//! | Static Street View Metadata | Essentials | unlimited | 0 | | | | |
//!
//! **Verify before quoting** ([`PRICE_LIST_NOTE`]): the first two bands match Google's own
//! per-API pages; the caps and the upper bands come from third-party copies of Google's table.
//!
//! ```
//! use streetview::cost::Sku;
//! assert_eq!(Sku::StaticStreetView.monthly_cost(100_000).to_string(), "$630.00");
//! assert_eq!(Sku::DynamicStreetView.monthly_cost(5_000).to_string(), "$0.00");
//! ```

use std::fmt;

/// The day the price list took effect.
pub const PRICE_LIST_DATE: &str = "2025-03-01";

/// Where the numbers come from and how far to trust them.
pub const PRICE_LIST_NOTE: &str = "Google Maps Platform global list prices in USD, in force from 2025-03-01. \
The $7.00/$5.60 (static) and $14.00/$11.20 (dynamic) bands match Google's per-API pages; the free caps \
(10,000 static, 5,000 dynamic) and the bands above 500,000 come from third-party copies of the price table. \
Verify at developers.google.com/maps/billing-and-pricing/pricing before quoting.";

/// A billable Street View product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sku {
    /// A Street View Static API image.
    StaticStreetView,
    /// A Maps JavaScript API `StreetViewPanorama` load (what a pegman drop opens).
    DynamicStreetView,
    /// A Street View Image Metadata request: free, unlimited, no quota.
    StaticStreetViewMetadata,
}

/// Google's 2025 SKU categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Essentials: the larger free caps.
    Essentials,
    /// Pro.
    Pro,
}

/// One volume band: events up to `up_to` (inclusive, total monthly volume) cost
/// `micro_usd_per_event` each. The last band has no upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// Highest monthly event number in the band; `None` for the open last band.
    pub up_to: Option<u64>,
    /// Price per event in micro-USD (7,000 = $7.00 per 1,000).
    pub micro_usd_per_event: u64,
}

const fn band(up_to: u64, micro_usd_per_event: u64) -> Band {
    Band {
        up_to: Some(up_to),
        micro_usd_per_event,
    }
}

const STATIC_BANDS: [Band; 5] = [
    band(100_000, 7_000),
    band(500_000, 5_600),
    band(1_000_000, 4_200),
    band(5_000_000, 2_100),
    Band {
        up_to: None,
        micro_usd_per_event: 530,
    },
];

const DYNAMIC_BANDS: [Band; 5] = [
    band(100_000, 14_000),
    band(500_000, 11_200),
    band(1_000_000, 8_400),
    band(5_000_000, 4_200),
    Band {
        up_to: None,
        micro_usd_per_event: 1_050,
    },
];

impl Sku {
    /// Every SKU, in display order.
    pub const ALL: [Sku; 3] = [
        Sku::StaticStreetView,
        Sku::DynamicStreetView,
        Sku::StaticStreetViewMetadata,
    ];

    /// Google's SKU name.
    pub fn name(self) -> &'static str {
        match self {
            Sku::StaticStreetView => "Static Street View",
            Sku::DynamicStreetView => "Dynamic Street View",
            Sku::StaticStreetViewMetadata => "Static Street View Metadata",
        }
    }

    /// The SKU's category.
    pub fn category(self) -> Category {
        match self {
            Sku::DynamicStreetView => Category::Pro,
            Sku::StaticStreetView | Sku::StaticStreetViewMetadata => Category::Essentials,
        }
    }

    /// Free events per month; `None` means unlimited.
    pub fn free_per_month(self) -> Option<u64> {
        match self {
            Sku::StaticStreetView => Some(10_000),
            Sku::DynamicStreetView => Some(5_000),
            Sku::StaticStreetViewMetadata => None,
        }
    }

    /// The volume bands (empty for a free SKU).
    pub fn bands(self) -> &'static [Band] {
        match self {
            Sku::StaticStreetView => &STATIC_BANDS,
            Sku::DynamicStreetView => &DYNAMIC_BANDS,
            Sku::StaticStreetViewMetadata => &[],
        }
    }

    /// Whether the SKU never costs anything.
    pub fn is_free(self) -> bool {
        self.bands().is_empty()
    }

    /// The bill for `events` in one month.
    pub fn monthly_cost(self, events: u64) -> Usd {
        let Some(free) = self.free_per_month() else {
            return Usd::ZERO;
        };
        let mut total: u128 = 0;
        let mut lower = 0u64; // Highest event number of the previous band.
        for band in self.bands() {
            let upper = band.up_to.unwrap_or(u64::MAX).min(events);
            let start = lower.max(free);
            if upper > start {
                total += u128::from(upper - start) * u128::from(band.micro_usd_per_event);
            }
            match band.up_to {
                Some(up_to) if up_to < events => lower = up_to,
                _ => break,
            }
        }
        Usd(total)
    }
}

/// An amount of US dollars, exact to the micro-dollar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Usd(u128);

impl Usd {
    /// $0.
    pub const ZERO: Usd = Usd(0);

    /// From micro-USD.
    pub const fn from_micros(micros: u128) -> Self {
        Usd(micros)
    }

    /// In micro-USD.
    pub const fn micros(self) -> u128 {
        self.0
    }

    /// In dollars, rounded to the nearest `f64` (for JSON output; keep [`Usd::micros`] for
    /// sums).
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0 + other.0)
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Usd {
    /// `$1,234.50`: thousands separated, at least 2 decimals, more only when needed
    /// (`$0.007`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = (self.0 / 1_000_000).to_string();
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        let frac = format!("{:06}", self.0 % 1_000_000);
        let frac = frac.trim_end_matches('0');
        write!(f, "${grouped}.{frac:0<2}")
    }
}

/// One SKU's share of an [`Estimate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The SKU.
    pub sku: Sku,
    /// Events in the month.
    pub events: u64,
    /// How many of them were free.
    pub free: u64,
    /// How many were billed.
    pub billable: u64,
    /// Their cost.
    pub cost: Usd,
}

/// A month's bill over several SKUs.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// One line per SKU, in the order given.
    pub lines: Vec<Line>,
    /// The sum of the lines.
    pub total: Usd,
    /// [`PRICE_LIST_DATE`].
    pub price_list_date: &'static str,
}

/// Estimates a month with `usage` events per SKU.
///
/// ```
/// use streetview::cost::{estimate, Sku};
/// let bill = estimate(&[(Sku::StaticStreetView, 150_000), (Sku::StaticStreetViewMetadata, 1_000_000)]);
/// assert_eq!(bill.total.to_string(), "$910.00");
/// assert_eq!(bill.lines[1].billable, 0);
/// ```
pub fn estimate(usage: &[(Sku, u64)]) -> Estimate {
    let lines: Vec<Line> = usage
        .iter()
        .map(|&(sku, events)| {
            let free = sku.free_per_month().map_or(events, |cap| cap.min(events));
            Line {
                sku,
                events,
                free,
                billable: events - free,
                cost: sku.monthly_cost(events),
            }
        })
        .collect();
    Estimate {
        total: lines.iter().map(|l| l.cost).sum(),
        lines,
        price_list_date: PRICE_LIST_DATE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(sku: Sku, events: u64) -> String {
        sku.monthly_cost(events).to_string()
    }

    #[test]
    fn static_vectors() {
        let s = Sku::StaticStreetView;
        assert_eq!(cost(s, 0), "$0.00");
        assert_eq!(cost(s, 10_000), "$0.00");
        assert_eq!(cost(s, 10_001), "$0.007");
        assert_eq!(cost(s, 100_000), "$630.00");
        assert_eq!(cost(s, 150_000), "$910.00");
        assert_eq!(cost(s, 1_000_000), "$4,970.00");
        assert_eq!(cost(s, 6_000_000), "$13,900.00");
        assert_eq!(s.monthly_cost(10_001).micros(), 7_000);
    }

    #[test]
    fn dynamic_vectors() {
        let d = Sku::DynamicStreetView;
        assert_eq!(cost(d, 5_000), "$0.00");
        assert_eq!(cost(d, 100_000), "$1,330.00");
        assert_eq!(cost(d, 600_000), "$6,650.00");
        assert_eq!(d.category(), Category::Pro);
    }

    #[test]
    fn metadata_is_free() {
        assert_eq!(cost(Sku::StaticStreetViewMetadata, 1_000_000_000), "$0.00");
        assert!(Sku::StaticStreetViewMetadata.is_free());
        assert!(!Sku::StaticStreetView.is_free());
    }

    #[test]
    fn band_edges() {
        let s = Sku::StaticStreetView;
        // 100,001 is the first event of band 2.
        assert_eq!(s.monthly_cost(100_001).micros(), 630_000_000 + 5_600);
        assert_eq!(s.monthly_cost(500_000).to_string(), "$2,870.00");
        // No overflow at the top.
        assert!(s.monthly_cost(u64::MAX).micros() > 0);
    }

    #[test]
    fn usd_display() {
        assert_eq!(Usd::from_micros(0).to_string(), "$0.00");
        assert_eq!(Usd::from_micros(1).to_string(), "$0.000001");
        assert_eq!(Usd::from_micros(500_000).to_string(), "$0.50");
        assert_eq!(
            Usd::from_micros(1_234_567_890_000).to_string(),
            "$1,234,567.89"
        );
        assert_eq!(Usd::from_micros(999_000_000).to_string(), "$999.00");
    }

    #[test]
    fn estimate_sums_lines() {
        let bill = estimate(&[
            (Sku::StaticStreetView, 10_001),
            (Sku::DynamicStreetView, 100_000),
        ]);
        assert_eq!(bill.lines[0].free, 10_000);
        assert_eq!(bill.lines[0].billable, 1);
        assert_eq!(bill.total.micros(), 7_000 + 1_330_000_000);
        assert_eq!(bill.price_list_date, "2025-03-01");
    }
}
