//! Tokens sealed and opened per second for a 40-byte secret, beside raw
//! AES-256-GCM seal and open of the same bytes in the same run. The ratio
//! (raw time / token time) is the token format's overhead: parsing, base64,
//! key lookup and a fresh random nonce per token.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyturn::keys::{Key, KeyKind};
use keyturn::token::Keyring;

const SECRET: &[u8; 40] = b"Server=db01;User=qa;Password=Tr0ub4dor&3";

fn tokens(c: &mut Criterion) {
    let key = Key::generate(KeyKind::Encryption).expect("random");
    let old = Key::generate(KeyKind::Encryption).expect("random");
    let ring = Keyring::new(&key, &[old, Key::default_for(KeyKind::Encryption)]);
    let token = ring.seal(SECRET);
    let raw = Aes256Gcm::new_from_slice(key.expose_secret()).expect("32 bytes");
    let nonce = [7u8; 12];
    let sealed = raw.encrypt(Nonce::from_slice(&nonce), SECRET.as_slice()).expect("seal");

    let mut group = c.benchmark_group("40-byte secret");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw AES-256-GCM seal", |b| {
        b.iter(|| raw.encrypt(Nonce::from_slice(black_box(&nonce)), black_box(SECRET.as_slice())))
    });
    group.bench_function("token seal", |b| b.iter(|| ring.seal(black_box(SECRET))));
    group.bench_function("raw AES-256-GCM open", |b| {
        b.iter(|| raw.decrypt(Nonce::from_slice(black_box(&nonce)), black_box(sealed.as_slice())))
    });
    group.bench_function("token open", |b| b.iter(|| ring.open(black_box(&token))));
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
