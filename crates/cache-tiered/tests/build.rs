//! Bad settings of a tier are refused when it is built, with an error naming the setting.

use std::time::Duration;

use cache_core::ErrorKind;
use cache_tiered::{MAX_LOCAL_TTL, TierLayer};

async fn refused(builder: cache_tiered::TierBuilder, mentions: &str) {
    let err = builder.build().await.expect_err("the settings are refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains(mentions), "{err} names {mentions}");
}

#[tokio::test]
async fn a_local_bound_of_zero_is_refused() {
    refused(TierLayer::builder().max_entries(0), "max_entries").await;
    refused(TierLayer::builder().max_bytes(0), "max_bytes").await;
}

#[tokio::test]
async fn a_local_lifetime_of_zero_or_past_the_maximum_is_refused() {
    refused(TierLayer::builder().local_ttl(Duration::ZERO), "local_ttl").await;
    refused(
        TierLayer::builder().local_ttl(MAX_LOCAL_TTL + Duration::from_millis(1)),
        "local_ttl",
    )
    .await;
    let at_max = TierLayer::builder().local_ttl(MAX_LOCAL_TTL).build().await;
    assert!(at_max.is_ok(), "the maximum itself is allowed");
}
