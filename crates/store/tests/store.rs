//! The store's contract, run against SQLite and against a real PostgreSQL
//! (the URL of a throwaway server in PEERDIAL_TEST_POSTGRES, which the
//! project's test command starts). The portal's rows (accounts, profiles,
//! the yellow pages, pairing, friends, vanity moves) are in portal.rs.

mod common;

use common::{binding, databases, device};
use peerdial_store::{Store, Write};

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
