//! The store's contract, run against SQLite and against a real PostgreSQL
//! (the URL of a throwaway server in PEERDIAL_TEST_POSTGRES, which the
//! project's test command starts).

use peerdial_store::{BindingRow, DeviceRow, Store, Write};
use sqlx::Connection;

fn device(mac: &str, number: i64) -> DeviceRow {
    DeviceRow {
        mac: mac.into(),
        number,
        secret_hash: "h".into(),
        ha1_md5: "m".into(),
        ha1_sha256: "s".into(),
        ip: "192.0.2.1".into(),
        created_ms: 1,
        updated_ms: 1,
    }
}

fn binding(number: i64, port: u16) -> BindingRow {
    BindingRow {
        number,
        uri: format!("sip:{number}@192.0.2.1:{port}"),
        contact: "sip:x@y".into(),
        transport: "udp".into(),
        addr: format!("192.0.2.1:{port}"),
        expires_ms: 99,
        call_id: "c".into(),
        cseq: 1,
    }
}

/// A fresh database for one test: a SQLite file, or a new PostgreSQL database.
async fn databases() -> Vec<(String, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(format!("sqlite:{}", dir.path().join("t.db").display()), Some(dir))];
    match std::env::var("PEERDIAL_TEST_POSTGRES") {
        Ok(admin) => {
            let name = format!("peerdial_t{}", std::process::id() as u64 * 1000 + rand_suffix());
            let mut c = sqlx::PgConnection::connect(&admin).await.expect("connect to test PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0.to_string();
            out.push((format!("{base}/{name}"), None));
        }
        Err(_) if std::env::var("PEERDIAL_REQUIRE_POSTGRES").is_ok() => panic!("PEERDIAL_TEST_POSTGRES is not set"),
        Err(_) => eprintln!("PEERDIAL_TEST_POSTGRES not set: PostgreSQL part skipped (the test command sets it)"),
    }
    out
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn devices_and_bindings_survive_reopen() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        assert_eq!(
            s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860212345678)))
                .await
                .unwrap(),
            1
        );
        // Same MAC, or same number: refused without error, nothing changed.
        assert_eq!(
            s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860200000001)))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.write(Write::InsertDevice(device("02:00:00:00:00:02", 8860212345678)))
                .await
                .unwrap(),
            0
        );
        let upd = Write::UpdateCredentials {
            mac: "02:00:00:00:00:01".into(),
            ha1_md5: "m2".into(),
            ha1_sha256: "s2".into(),
            ip: "192.0.2.9".into(),
            updated_ms: 5,
        };
        assert_eq!(s.write(upd).await.unwrap(), 1);
        s.write(Write::UpsertBinding(binding(8860212345678, 5060))).await.unwrap();
        s.write(Write::UpsertBinding(binding(8860212345678, 5070))).await.unwrap();
        s.write(Write::UpsertBinding(binding(8860212345679, 5080))).await.unwrap();
        assert_eq!(s.write(Write::DeleteBinding(8860212345679)).await.unwrap(), 1);
        s.close().await;

        let s = Store::open(&url).await.unwrap();
        let devices = s.devices().await.unwrap();
        assert_eq!(devices.len(), 1, "{url}");
        assert_eq!((devices[0].ha1_sha256.as_str(), devices[0].ip.as_str()), ("s2", "192.0.2.9"));
        assert_eq!(s.device_by_mac("02:00:00:00:00:01").await.unwrap().unwrap().number, 8860212345678);
        assert_eq!(s.bindings().await.unwrap(), vec![binding(8860212345678, 5070)], "{url}");
        s.close().await;
    }
}

#[tokio::test]
async fn concurrent_writes_are_all_durable() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        let tasks: Vec<_> = (0..3000i64)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.write(Write::UpsertBinding(binding(8860200000000 + i, 5060))).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 1);
        }
        // Every acknowledged write is visible to a fresh process.
        drop(s);
        let s = Store::open(&url).await.unwrap();
        assert_eq!(s.bindings().await.unwrap().len(), 3000, "{url}");
    }
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(Store::open("mysql://x").await.is_err());
}

#[tokio::test]
async fn releasing_a_device_frees_its_mac_and_retires_its_number() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860210000001)))
            .await
            .unwrap();
        s.write(Write::InsertDevice(device("02:00:00:00:00:02", 8860210000002)))
            .await
            .unwrap();
        s.write(Write::UpsertBinding(binding(8860210000001, 5070))).await.unwrap();
        assert_eq!(s.release_device("02:00:00:00:00:09", 1000).await.unwrap(), None, "{url}");
        assert_eq!(s.devices().await.unwrap().len(), 2, "an unknown MAC changes nothing ({url})");
        assert_eq!(s.release_device("02:00:00:00:00:01", 1000).await.unwrap(), Some(8860210000001));
        s.close().await;
        // Durable: a reopened store no longer has the device nor its binding,
        // and remembers the number as retired at that time.
        let s = Store::open(&url).await.unwrap();
        let macs: Vec<String> = s.devices().await.unwrap().into_iter().map(|d| d.mac).collect();
        assert_eq!(macs, vec!["02:00:00:00:00:02".to_string()], "{url}");
        assert!(s.bindings().await.unwrap().is_empty(), "{url}");
        assert_eq!(s.retired_numbers(1000).await.unwrap(), vec![8860210000001], "{url}");
        assert!(s.retired_numbers(1001).await.unwrap().is_empty(), "quarantine over ({url})");
        // The MAC can be provisioned again, with another number.
        assert_eq!(
            s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860210000003)))
                .await
                .unwrap(),
            1
        );
        s.close().await;
    }
}

#[tokio::test]
async fn greetings_are_stored_replaced_and_removed() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        assert_eq!(s.greeting(8860210000001, "caller").await.unwrap(), None);
        s.put_greeting(8860210000001, "caller", b"\x89PNG one", "\"a\"", 1).await.unwrap();
        s.put_greeting(8860210000001, "caller", b"\x89PNG two", "\"b\"", 2).await.unwrap();
        s.put_greeting(8860210000001, "callee", b"\x89PNG three", "\"c\"", 2).await.unwrap();
        s.close().await;
        let s = Store::open(&url).await.unwrap();
        assert_eq!(
            s.greeting(8860210000001, "caller").await.unwrap(),
            Some(("\"b\"".to_string(), b"\x89PNG two".to_vec())),
            "{url}"
        );
        let mut etags = s.greeting_etags().await.unwrap();
        etags.sort();
        assert_eq!(etags.len(), 2, "{url}");
        assert!(s.delete_greeting(8860210000001, "caller").await.unwrap());
        assert!(!s.delete_greeting(8860210000001, "caller").await.unwrap());
        assert_eq!(s.greeting(8860210000001, "caller").await.unwrap(), None, "{url}");
        s.close().await;
    }
}

#[tokio::test]
async fn presence_policies_are_stored_replaced_and_dropped_on_release() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        assert!(s.presence_policies().await.unwrap().is_empty(), "{url}");
        s.put_presence_policy(8860210000001, true, &[8860210000002, 8860210000003], 1)
            .await
            .unwrap();
        s.put_presence_policy(8860210000001, true, &[8860210000004], 2).await.unwrap();
        s.close().await;
        let s = Store::open(&url).await.unwrap();
        assert_eq!(
            s.presence_policies().await.unwrap(),
            vec![(8860210000001, true, vec![8860210000004])],
            "{url}"
        );
        s.put_presence_policy(8860210000001, false, &[], 3).await.unwrap();
        assert_eq!(s.presence_policies().await.unwrap(), vec![(8860210000001, false, vec![])], "{url}");
        // A released number's next owner starts with presence for everyone.
        s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860210000001)))
            .await
            .unwrap();
        s.put_presence_policy(8860210000001, true, &[], 4).await.unwrap();
        s.set_password_hash(8860210000001, "$argon2id$old", 4).await.unwrap();
        s.put_greeting(8860210000001, "caller", b"\x89PNG", "\"g\"", 4).await.unwrap();
        assert_eq!(s.release_device("02:00:00:00:00:01", 5).await.unwrap(), Some(8860210000001));
        assert!(s.presence_policies().await.unwrap().is_empty(), "{url}");
        assert_eq!(
            s.password_hash(8860210000001).await.unwrap(),
            None,
            "{url}: the old owner's password goes"
        );
        assert_eq!(
            s.greeting(8860210000001, "caller").await.unwrap(),
            None,
            "{url}: and their pictures"
        );
        s.close().await;
    }
}

#[tokio::test]
async fn passwords_and_profiles_keep_private_fields_out_of_search() {
    use peerdial_store::{search_terms, ProfileRow};
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        assert_eq!(s.password_hash(8860210000001).await.unwrap(), None);
        s.set_password_hash(8860210000001, "$argon2id$one", 1).await.unwrap();
        s.set_password_hash(8860210000001, "$argon2id$two", 2).await.unwrap();
        let p = ProfileRow {
            number: 8860210000001,
            fields: [
                "Ada Lin".into(),
                "Taipei".into(),
                "Secretcorp".into(),
                "kites, Café".into(),
                "hello".into(),
            ],
            public_mask: 0b11011, // organisation private
            listed: true,
        };
        s.put_profile(&p, 3).await.unwrap();
        let hidden = ProfileRow {
            number: 8860210000002,
            fields: ["Bo Taipei".into(), String::new(), String::new(), String::new(), String::new()],
            public_mask: 1,
            listed: false,
        };
        s.put_profile(&hidden, 3).await.unwrap();
        s.close().await;

        let s = Store::open(&url).await.unwrap();
        assert_eq!(
            s.password_hash(8860210000001).await.unwrap().as_deref(),
            Some("$argon2id$two"),
            "{url}"
        );
        assert_eq!(s.profile(8860210000001).await.unwrap(), Some(p.clone()), "{url}");
        let (lo, hi) = (8860210000000, 8860219999999);
        let found = s.search_profiles(&search_terms("taip"), lo, hi, 10).await.unwrap();
        assert_eq!(found.len(), 1, "{url}: unlisted profiles are not found");
        assert_eq!(found[0].fields[0], "Ada Lin");
        assert_eq!(found[0].fields[2], "", "{url}: a private field comes back empty");
        // Diacritics are folded on both engines: "cafe" finds "Café".
        assert_eq!(
            s.search_profiles(&search_terms("cafe"), lo, hi, 10).await.unwrap().len(),
            1,
            "{url}"
        );
        assert_eq!(
            s.search_profiles(&search_terms("CAFÉ"), lo, hi, 10).await.unwrap().len(),
            1,
            "{url}"
        );
        assert!(
            s.search_profiles(&search_terms("secretcorp"), lo, hi, 10).await.unwrap().is_empty(),
            "{url}"
        );
        for q in ["\"", "NEAR(", "*", "(((", "a OR", "-x", "'", ":"] {
            s.search_profiles(&search_terms(q), lo, hi, 10).await.unwrap();
        }
        assert_eq!(s.search_profiles(&[], lo, hi, 10).await.unwrap().len(), 1, "{url}");
        assert!(
            s.search_profiles(&search_terms("ada"), 1, 2, 10).await.unwrap().is_empty(),
            "{url}: outside the area"
        );
        // Making the field public makes it findable; unlisting hides everything.
        s.put_profile(
            &ProfileRow {
                public_mask: 0b11111,
                ..p.clone()
            },
            4,
        )
        .await
        .unwrap();
        assert_eq!(
            s.search_profiles(&search_terms("secretcorp"), lo, hi, 10).await.unwrap().len(),
            1,
            "{url}"
        );
        s.put_profile(
            &ProfileRow {
                listed: false,
                ..p.clone()
            },
            5,
        )
        .await
        .unwrap();
        assert!(
            s.search_profiles(&search_terms("ada"), lo, hi, 10).await.unwrap().is_empty(),
            "{url}"
        );
        // Many matches (loaded in bulk, out of order): a page in number
        // order, cut at the limit; the LIKE scan (the benchmark's floor)
        // agrees on the page.
        let many: Vec<ProfileRow> = [7u8, 3, 9, 5]
            .iter()
            .map(|&k| ProfileRow {
                number: 8860210000100 + k as i64,
                fields: [
                    format!("Kite flyer {k}"),
                    "Tainan".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
                public_mask: 0b11,
                listed: true,
            })
            .collect();
        s.put_profiles(&many, 6).await.unwrap();
        let numbers = |rows: Vec<ProfileRow>| rows.iter().map(|r| r.number).collect::<Vec<_>>();
        let page = numbers(s.search_profiles(&search_terms("kite tain"), lo, hi, 3).await.unwrap());
        assert_eq!(page, [8860210000103, 8860210000105, 8860210000107], "{url}");
        assert_eq!(
            numbers(s.scan_profiles(&search_terms("kite tain"), lo, hi, 3).await.unwrap()),
            page,
            "{url}"
        );
        // A term that is a prefix of a word, one longer than any word, and
        // the same words in another order.
        assert_eq!(
            numbers(s.search_profiles(&search_terms("ki FLY"), lo, hi, 9).await.unwrap()).len(),
            4,
            "{url}"
        );
        // Prefixes of 4 to 6 characters (SQLite: their own prefix
        // indexes, migration 0019) and a whole word find the same people.
        for q in ["tain", "taina", "tainan", "flye kite", "flyer"] {
            let found = s.search_profiles(&search_terms(q), lo, hi, 9).await.unwrap();
            assert_eq!(numbers(found).len(), 4, "{q:?} on {url}");
        }
        assert!(
            s.search_profiles(&search_terms("kites"), lo, hi, 9).await.unwrap().is_empty(),
            "{url}"
        );
        assert_eq!(
            numbers(s.search_profiles(&search_terms("tainan kite"), lo, hi, 3).await.unwrap()),
            page,
            "{url}"
        );
        s.close().await;

        // A PostgreSQL database from before the yellow pages' posting
        // table: its profiles are not indexed, and opening it indexes them.
        if url.starts_with("postgres") {
            sqlx::any::install_default_drivers();
            let (_, raw) = peerdial_store::connect_url(&url).unwrap();
            let mut c = sqlx::AnyConnection::connect(&raw).await.unwrap();
            for sql in [
                "UPDATE profiles SET search_words = NULL",
                "DELETE FROM profile_terms",
                "DELETE FROM profile_words",
            ] {
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            c.close().await.unwrap();
        }
        let s = Store::open(&url).await.unwrap();
        assert_eq!(
            numbers(s.search_profiles(&search_terms("kite tain"), lo, hi, 3).await.unwrap()),
            page,
            "{url}: indexed when opened"
        );
        assert!(
            s.search_profiles(&search_terms("ada"), lo, hi, 10).await.unwrap().is_empty(),
            "{url}"
        );
        s.close().await;
    }
}

#[tokio::test]
async fn pairing_codes_friends_and_vanity_moves() {
    use peerdial_store::PairingOutcome;
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        // A code works once, and not after it expires.
        s.put_pairing_code(8860210000001, "h0", 2000, 1000).await.unwrap();
        s.put_pairing_code(8860210000001, "h1", 2000, 1000).await.unwrap();
        let replaced = s.use_pairing_code(8860210000001, "h0", 1100).await.unwrap();
        assert_eq!(replaced, PairingOutcome::Wrong, "a new code replaces a live one");
        assert_eq!(
            s.use_pairing_code(8860210000001, "h1", 1200).await.unwrap(),
            PairingOutcome::Accepted
        );
        assert_eq!(s.use_pairing_code(8860210000001, "h1", 1300).await.unwrap(), PairingOutcome::Used);
        assert_eq!(
            {
                s.put_pairing_code(8860210000001, "h2", 1500, 1250).await.unwrap();
                s.use_pairing_code(8860210000001, "h2", 1600).await.unwrap()
            },
            PairingOutcome::Expired
        );
        assert_eq!(s.use_pairing_code(8860210000002, "h1", 1200).await.unwrap(), PairingOutcome::Wrong);
        // Friends are what presence policies list.
        assert!(s.add_friend(8860210000001, 8860210000007, 1).await.unwrap());
        assert!(!s.add_friend(8860210000001, 8860210000007, 2).await.unwrap());
        s.put_friends_only(8860210000001, true, 3).await.unwrap();
        assert_eq!(
            s.presence_policies().await.unwrap(),
            vec![(8860210000001, true, vec![8860210000007])],
            "{url}"
        );
        // Sessions of a number end together, but for the one kept.
        s.add_portal_session("s1", 8860210000001, 10).await.unwrap();
        s.add_portal_session("s2", 8860210000001, 10).await.unwrap();
        assert_eq!(s.end_number_sessions(8860210000001, Some("s2")).await.unwrap(), 1);
        assert_eq!(s.portal_session("s2").await.unwrap(), Some(8860210000001));
        // Two devices racing for one number: one moves, the other is refused.
        s.write(Write::InsertDevice(device("02:00:00:00:00:01", 8860210000001)))
            .await
            .unwrap();
        s.write(Write::InsertDevice(device("02:00:00:00:00:02", 8860210000002)))
            .await
            .unwrap();
        for n in [8860210000001, 8860210000002] {
            let p = peerdial_store::ProfileRow {
                number: n,
                fields: ["Racer".into(), String::new(), String::new(), String::new(), String::new()],
                public_mask: 1,
                listed: true,
            };
            s.put_profile(&p, 1).await.unwrap();
        }
        let (a, b) = tokio::join!(
            s.move_number(8860210000001, 8860210002026, "m", "s", 0, 100),
            s.move_number(8860210000002, 8860210002026, "m", "s", 0, 100)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "exactly one wins ({url}): {a} {b}");
        let (winner, loser) = if a {
            (8860210000001, 8860210000002)
        } else {
            (8860210000002, 8860210000001)
        };
        let moved = s.device_by_number(8860210002026).await.unwrap().unwrap();
        assert_eq!(moved.ha1_md5, "m");
        assert!(s.device_by_number(loser).await.unwrap().is_some(), "the loser keeps its number");
        assert_eq!(s.retired_numbers(100).await.unwrap(), vec![winner], "{url}");
        if winner == 8860210000001 {
            assert_eq!(s.friends(8860210002026).await.unwrap(), vec![8860210000007], "friends follow");
            assert_eq!(s.portal_session("s2").await.unwrap(), Some(8860210002026), "sessions follow");
        }
        // The yellow pages find the profile under its new number only.
        let found = s
            .search_profiles(&peerdial_store::search_terms("racer"), 8860210000000, 8860219999999, 9)
            .await
            .unwrap();
        let found: Vec<i64> = found.iter().map(|p| p.number).collect();
        assert_eq!(found, [loser, 8860210002026], "{url}");
        // A quarantined number cannot be taken.
        assert!(!s.move_number(loser, winner, "m", "s", 0, 200).await.unwrap());
        s.close().await;
    }
}

#[tokio::test]
async fn rendezvous_mappings_replace_by_number_and_by_sim() {
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        s.put_rendezvous_device("+886912000001", "aa", 1).await.unwrap();
        s.put_rendezvous_device("+886912000001", "bb", 2).await.unwrap();
        // The same SIM moved to another number leaves the first number unmapped.
        s.put_rendezvous_device("+886912000002", "bb", 3).await.unwrap();
        assert_eq!(
            s.rendezvous_devices().await.unwrap(),
            vec![("+886912000002".into(), "bb".into())],
            "{url}"
        );
        assert!(s.delete_rendezvous_device("+886912000002").await.unwrap());
        assert!(!s.delete_rendezvous_device("+886912000002").await.unwrap());
        s.close().await;
    }
}

#[tokio::test]
async fn channels_items_subscriptions_watermarks_and_broadcasts_survive_reopen() {
    use peerdial_store::{BroadcastRow, ItemRow};
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        let news = s.add_channel("news", "News", "local", 1).await.unwrap();
        assert!(s.add_channel("news", "again", "local", 1).await.is_err(), "names are unique");
        assert!(s.set_publisher(news, 8860210000001, true).await.unwrap());
        assert!(!s.set_publisher(news, 8860210000001, true).await.unwrap());
        let item = |channel, owner, text: &str, expires| ItemRow {
            id: 0,
            channel,
            owner,
            poster: 8860210000001,
            text: text.into(),
            posted_ms: 10,
            expires_ms: expires,
            delivered_ms: 0,
            origin: if channel == 0 { 0 } else { 40 + expires },
        };
        let a = s.add_item(&item(news, 0, "a", 1000)).await.unwrap();
        let b = s.add_item(&item(news, 0, "b", 50)).await.unwrap();
        let p = s.add_item(&item(0, 8860210000002, "private", 1000)).await.unwrap();
        assert!(a < b && b < p, "ids grow");
        assert!(s.set_subscription(8860210000002, news, true).await.unwrap());
        s.put_seen(&[(8860210000002, news, a), (8860210000002, news, a - 1)]).await.unwrap();
        let bc = s
            .add_broadcast(
                &BroadcastRow {
                    id: 0,
                    text: "hello".into(),
                    every_ms: 60_000,
                    until_ms: 500_000,
                    next_ms: 100,
                },
                1,
            )
            .await
            .unwrap();
        s.close().await;

        let s = Store::open(&url).await.unwrap();
        assert_eq!(s.channels().await.unwrap()[0].name, "news");
        let flash = s.add_channel_until("flash", "Flash sale", "local", 5_000, 2).await.unwrap();
        let ends: Vec<(i64, i64)> = s.channels().await.unwrap().iter().map(|c| (c.id, c.until_ms)).collect();
        assert_eq!(ends, [(news, 0), (flash, 5_000)]);
        assert_eq!(s.publishers().await.unwrap(), [(news, 8860210000001)]);
        let texts: Vec<String> = s.live_items(100).await.unwrap().into_iter().map(|i| i.text).collect();
        assert_eq!(texts, ["a", "private"], "expired items are not loaded");
        s.mark_delivered(p, 200).await.unwrap();
        assert_eq!(s.live_items(100).await.unwrap().len(), 1, "delivered private items are done");
        assert_eq!(s.relay_marks().await.unwrap(), [(news, 1040)], "the highest relayed id per channel");
        assert_eq!(s.delete_expired_items(100).await.unwrap(), 1);
        assert_eq!(s.subscriptions().await.unwrap(), [(8860210000002, news)]);
        assert_eq!(s.seen().await.unwrap(), [(8860210000002, news, a)], "a watermark only rises");
        assert_eq!(s.pending_broadcasts().await.unwrap()[0].id, bc);
        s.broadcast_started(bc, 0, 300).await.unwrap();
        assert!(s.pending_broadcasts().await.unwrap().is_empty());
        assert!(s.set_subscription(8860210000002, news, false).await.unwrap());
        s.close().await;
    }
}

#[tokio::test]
async fn mailbox_calls_messages_deliveries_prompts_and_states_survive_reopen() {
    use peerdial_store::{MessageRow, NumberStateRow};
    for (url, _dir) in databases().await {
        let s = Store::open(&url).await.unwrap();
        let owner = 8860210000001;
        let c = s.add_call(owner, "8860210000002", true, 5).await.unwrap();
        s.add_call(owner, "sip:someone@elsewhere", false, 6).await.unwrap();
        let msg = |kind: &str, body: &[u8]| MessageRow {
            id: 0,
            number: owner,
            kind: kind.into(),
            content_type: "text/plain".into(),
            sender: "8860210000002".into(),
            verified: true,
            at_ms: 7,
            size: body.len() as i64,
            read_ms: 0,
            body: body.to_vec(),
            path: String::new(),
        };
        let text = s.add_message(&msg("text", "hello \u{4f60}\u{597d}".as_bytes())).await.unwrap();
        let voice = s.add_message(&msg("voice", &[0, 1, 2, 255])).await.unwrap();
        assert!(voice > text);
        assert!(s.confirm_delivery(text, "tv", 8).await.unwrap());
        assert!(!s.confirm_delivery(text, "tv", 9).await.unwrap(), "{url}: confirmed once");
        assert!(s.mark_message_read(owner, voice, 10).await.unwrap());
        assert!(s.mark_message_read(owner, voice, 11).await.unwrap());
        assert!(
            !s.mark_message_read(owner + 1, voice, 11).await.unwrap(),
            "{url}: another number's message"
        );
        s.put_prompt(owner, b"RIFF1", 1).await.unwrap();
        s.put_prompt(owner, b"RIFF2", 2).await.unwrap();
        let state = NumberStateRow {
            number: owner,
            online: false,
            addr: "127.0.0.1:5070".into(),
            changed_ms: 12,
        };
        s.put_number_state(&NumberStateRow {
            online: true,
            ..state.clone()
        })
        .await
        .unwrap();
        s.put_number_state(&state).await.unwrap();
        s.close().await;

        let s = Store::open(&url).await.unwrap();
        let calls = s.calls(owner).await.unwrap();
        assert_eq!(calls.len(), 2, "{url}");
        assert_eq!(
            (calls[0].id, calls[0].caller.as_str(), calls[0].verified),
            (c, "8860210000002", true)
        );
        assert!(!calls[1].verified);
        let index = s.message_index().await.unwrap();
        assert_eq!(
            index.iter().map(|m| (m.id, m.kind.as_str())).collect::<Vec<_>>(),
            vec![(text, "text"), (voice, "voice")]
        );
        assert!(index.iter().all(|m| m.body.is_empty()), "the index carries no bodies");
        let v = s.message(owner, voice).await.unwrap().unwrap();
        assert_eq!(
            (v.body.as_slice(), v.read_ms, v.size),
            (&[0u8, 1, 2, 255][..], 10, 4),
            "{url}: read once, at 10"
        );
        assert_eq!(
            s.message(owner, text).await.unwrap().unwrap().body,
            "hello \u{4f60}\u{597d}".as_bytes()
        );
        assert_eq!(s.deliveries().await.unwrap(), vec![(text, "tv".to_string())]);
        assert_eq!(s.prompt(owner).await.unwrap().as_deref(), Some(&b"RIFF2"[..]));
        assert_eq!(s.prompt(owner + 1).await.unwrap(), None);
        assert_eq!(s.number_state(owner).await.unwrap(), Some(state));
        assert!(s.delete_message(owner, text).await.unwrap());
        assert!(!s.delete_message(owner, text).await.unwrap());
        assert!(s.deliveries().await.unwrap().is_empty(), "{url}: its deliveries went with it");
        assert!(s.delete_call(owner, c).await.unwrap());
        assert_eq!(s.calls(owner).await.unwrap().len(), 1);
        s.close().await;
    }
}
