//! Verifying a Mini App's `initData`, as every customer request does (target: ≤ 2 µs).
//!
//! `cargo bench -p domain --bench init_data`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::auth::{DEFAULT_MAX_AGE, InitDataVerifier};
use time::{Duration, OffsetDateTime};

const BOT_TOKEN: &str = "7000000001:BENCH-fake-token-botshop";

fn verify(c: &mut Criterion) {
    let verifier = InitDataVerifier::new(BOT_TOKEN, DEFAULT_MAX_AGE);
    let auth_date =
        OffsetDateTime::from_unix_timestamp(1_767_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // What Telegram sends for a user with a Cyrillic name, percent-encoded as in the header.
    let user = r#"{"id":987654321,"first_name":"Иван","last_name":"Петров","username":"ivan_petrov","language_code":"ru","is_premium":true,"allows_write_to_pm":true,"photo_url":"https:\/\/t.me\/i\/userpic\/320\/abc.svg"}"#;
    let init_data = verifier.sign(&[
        ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
        ("user", user),
        ("auth_date", &auth_date.unix_timestamp().to_string()),
        ("signature", "bm90LWEtcmVhbC1zaWduYXR1cmUtanVzdC1sb25n"),
    ]);
    let now = auth_date + Duration::minutes(5);
    assert!(
        verifier.verify(&init_data, now).is_ok(),
        "the fixture must verify"
    );

    c.bench_function("init_data_verify", |b| {
        b.iter(|| verifier.verify(black_box(&init_data), black_box(now)))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
