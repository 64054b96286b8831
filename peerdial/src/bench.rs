//! `peerdial bench …`: benchmarks, each run side by side with the peer it
//! is compared with, on this machine, in one run. Results are printed as a
//! Markdown table row ready for docs/benchmarks.md.
//!
//! Every load is bounded (a count of requests or a number of seconds) and
//! every process started here is stopped by its PID.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::bench_tools::Load;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// REGISTER throughput (digest auth, database write, DNS update), SIPp
    /// against peerdial and against Kamailio (in-memory usrloc, no auth).
    Register {
        /// Users, each registered once per load (after the first load from
        /// a new address, so each registration changes the binding).
        #[arg(long, default_value_t = 20_000)]
        registrations: u32,
        /// Target rate SIPp tries to reach, per second.
        #[arg(long, default_value_t = 20_000)]
        rate: u32,
        /// Loads to run, each as SIPp drivers × registrations in flight per
        /// driver; each server's peak over them is compared.
        #[arg(long, value_delimiter = ',', default_value = "1x200,1x1000,2x500")]
        loads: Vec<Load>,
        /// Times every load is run against each server (medians are compared).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Let the servers and SIPp share every core. By default each server
        /// runs on core 0 and the SIPp drivers on core 1, so the driver's
        /// work (twice the messages for a digest registration) does not
        /// count against the server it drives.
        #[arg(long)]
        no_pin: bool,
    },
    /// NAPTR query throughput with dnsperf, peerdial's embedded DNS against
    /// NSD serving the same zone.
    Dns {
        /// Registered numbers in the zone.
        #[arg(long, default_value_t = 100_000)]
        numbers: u32,
        /// Seconds of load for each server.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// dnsperf client sockets.
        #[arg(long, default_value_t = 8)]
        clients: u32,
    },
    /// Registration → DNS visibility latency, p50 and p99.
    Latency {
        #[arg(long, default_value_t = 1000)]
        samples: u32,
    },
    /// Resident memory per provisioned and registered number.
    Memory {
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u32,
    },
    /// Call setup time, dial → 180 and → 200, with the lookup through
    /// unbound (warm and cold cache), with and without signed caller
    /// identity, next to SIPp UAC → SIPp UAS.
    Calls {
        #[arg(long, default_value_t = 1000)]
        calls: u32,
        /// The callee in another region: unbound walks from the top (root:
        /// servers on port 53 of 127.55.0.x).
        #[arg(long)]
        cross_region: bool,
    },
    /// Registration → answer at NSD and BIND secondaries (NOTIFY + IXFR),
    /// and IXFR bytes per change.
    Propagation {
        #[arg(long, default_value_t = 300)]
        samples: u32,
    },
    /// A large zone to a BIND secondary (AXFR, then IXFR after a batch of
    /// changes), from a region and from Knot as the primary.
    Transfer {
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u32,
        #[arg(long, default_value_t = 1000)]
        changes: u32,
    },
    /// Mouth-to-ear latency and CPU per call through the sound device layer
    /// (ALSA plugins on named pipes): two of our phones next to two
    /// baresips. Needs the `sound` feature.
    MouthToEar {
        /// Seconds each pair is measured (a burst a second).
        #[arg(long, default_value_t = 30)]
        seconds: u32,
    },
    /// CPU per concurrent call in the phone's media engine (Opus, PCMU, PCMA).
    Media {
        #[arg(long, default_value_t = 20)]
        calls: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
    /// Greeting downloads: full GETs and 304 revalidations per second from
    /// the region's HTTP API, next to nginx serving the same PNG files
    /// (load by wrk, keep-alive).
    Greetings {
        /// Numbers, each with a caller greeting.
        #[arg(long, default_value_t = 100)]
        numbers: u32,
        /// Seconds of load per server, kind of request and round.
        #[arg(long, default_value_t = 3)]
        seconds: u32,
        /// Rounds (the medians are compared).
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// wrk's keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Let the servers and wrk share every core (by default each
        /// server runs on core 0, wrk on core 1).
        #[arg(long)]
        no_pin: bool,
    },
    /// Presence fan-out: NOTIFYs delivered per second and change → NOTIFY
    /// p50/p99, Kamailio's presence module (in memory) as the reference,
    /// both driven by SIPp (watcher and publisher scenarios).
    Presence {
        #[arg(long, default_value_t = 1000)]
        presentities: u32,
        /// Subscriptions per presentity.
        #[arg(long, default_value_t = 10)]
        watchers: u32,
        /// State changes per second, one step each.
        #[arg(long, value_delimiter = ',', default_value = "200,1000,2000,3000")]
        rates: Vec<u32>,
        /// Seconds of changes per step.
        #[arg(long, default_value_t = 4)]
        seconds: u32,
        /// Watcher addresses (127.0.1.x, one SIPp socket each). 50 keeps
        /// each address within the region's default flood limits (200
        /// subscriptions per address arrive within the burst).
        #[arg(long, default_value_t = 50)]
        addresses: u32,
        /// Watcher SIPp processes sharing the addresses (SIPp is
        /// single-threaded).
        #[arg(long, default_value_t = 4)]
        sipp_watchers: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// PASSporT signatures and verifications per second on one core, next
    /// to `openssl speed ecdsap256`.
    Identity {
        /// Most operations of each kind.
        #[arg(long, default_value_t = 100_000)]
        count: u32,
        /// Most seconds for each kind (and OpenSSL's run time per kind).
        #[arg(long, default_value_t = 3)]
        seconds: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Switch designation (issue 15): a top and a switch in this process,
    /// --clients asking the top as the switch; p50/p99 from the request to
    /// the caller holding address and key, and designations per second.
    Designate {
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 16)]
        clients: u32,
    },
    /// The identity rendezvous's core on one core: pairing latency
    /// (second submission → both sides told) p50/p99, and pairings per
    /// second with --pending submissions waiting.
    Rendezvous {
        #[arg(long, default_value_t = 10_000)]
        pending: u32,
        /// Pairings timed one by one for the latency.
        #[arg(long, default_value_t = 100_000)]
        samples: u32,
        /// Pairings for the throughput.
        #[arg(long, default_value_t = 1_000_000)]
        pairings: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Yellow-pages keyword search over made-up profiles: searches per
    /// second and p50/p99 on SQLite (FTS5) and, with --postgres, on
    /// PostgreSQL (the store's posting table), next to a plain LIKE scan.
    Yellow(crate::bench_yellow::YellowArgs),
    /// The portal's pages under concurrent load (wrk): the yellow pages
    /// (a keyword search per request) and a signed-in profile page.
    Pages {
        #[arg(long, default_value_t = 100_000)]
        profiles: u32,
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        #[arg(long, default_value_t = 16)]
        connections: u32,
    },
    /// Broadcast fan-out: one broadcast to N registered SIPp endpoints,
    /// next to Kamailio relaying N MESSAGEs from a SIPp sender to the same
    /// kind of endpoints; time until all have it, rate, server CPU.
    Broadcast {
        /// Registered endpoints, one run each.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        endpoints: Vec<u32>,
        /// SIPp UAS processes sharing the endpoints.
        #[arg(long, default_value_t = 4)]
        uas: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Offline text messages: stored per second, then delivered per second
    /// when their users register, the region's mailbox next to Kamailio's
    /// msilo (SQLite) on the same SIPp workload.
    Msilo {
        /// Users nobody has registered when the texts are sent.
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// Texts per user.
        #[arg(long, default_value_t = 5)]
        per_user: u32,
        /// MESSAGEs SIPp keeps in flight while storing.
        #[arg(long, default_value_t = 200)]
        inflight: u32,
        /// SIPp endpoints the users register from (UAS processes).
        #[arg(long, default_value_t = 4)]
        endpoints: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Concurrent voice-message deposits: SIPp calls streaming G.711 RTP
    /// into the mailbox, each step C calls at once; packets lost or late,
    /// and the region's CPU per recorded second.
    Deposits {
        /// Concurrent deposits, one step each.
        #[arg(long, value_delimiter = ',', default_value = "100,250,500,750")]
        concurrent: Vec<u32>,
        /// Seconds of audio each caller streams.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// New calls per second while a step ramps up.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Third-party call setup: controller start → both talkers connected,
    /// SIPp UASes as talkers.
    Dial {
        #[arg(long, default_value_t = 500)]
        calls: usize,
    },
    /// The conference mixer next to Janus's AudioBridge (plain RTP): CPU
    /// per participant per second and the most participants one core
    /// mixes in real time.
    Mixer {
        /// Codecs, one comparison each (pcmu, pcma, opus).
        #[arg(long, value_delimiter = ',', default_value = "pcmu,opus")]
        codecs: Vec<String>,
        /// Participants per room.
        #[arg(long, default_value_t = 10)]
        room: usize,
        /// Participants speaking in each room (0: all); the rest send silence.
        #[arg(long, default_value_t = 3)]
        talkers: usize,
        /// Seconds measured per step (after 2 s of warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Most steps searching for the real-time limit.
        #[arg(long, default_value_t = 5)]
        steps: u32,
        #[arg(long)]
        no_pin: bool,
    },
    /// Push dispatches per second to a local Web Push service (encrypt,
    /// VAPID, send; the service verifies and decrypts each).
    Push {
        #[arg(long, default_value_t = 5_000)]
        dispatches: u32,
        /// Dispatches in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
    },
    /// Marquee requests per second and p50/p99 with N subscribed phones.
    Marquee {
        #[arg(long, default_value_t = 100_000)]
        phones: u32,
        /// Items in the channel.
        #[arg(long, default_value_t = 20)]
        items: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        #[arg(long, default_value_t = 32)]
        connections: u32,
        #[arg(long)]
        no_pin: bool,
    },
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.which {
        Which::Register {
            registrations,
            rate,
            loads,
            rounds,
            no_pin,
        } => crate::bench_spine::register(registrations, rate, loads, rounds, !no_pin).await,
        Which::Dns { numbers, seconds, clients } => crate::bench_spine::dns(numbers, seconds, clients).await,
        Which::Latency { samples } => crate::bench_spine::latency(samples).await,
        Which::Memory { numbers } => crate::bench_spine::memory(numbers),
        Which::Calls { calls, cross_region } => crate::bench_calls::calls(calls, cross_region).await,
        Which::Propagation { samples } => crate::bench_tree::propagation(samples).await,
        Which::Transfer { numbers, changes } => crate::bench_tree::transfer(numbers, changes).await,
        Which::Media { calls, seconds } => crate::bench_calls::media(calls, seconds),
        Which::MouthToEar { seconds } => crate::bench_sound::mouth_to_ear(seconds).await,
        Which::Greetings {
            numbers,
            seconds,
            connections,
            rounds,
            no_pin,
        } => crate::bench_greetings::greetings(numbers, seconds, connections, rounds, !no_pin).await,
        Which::Presence {
            presentities,
            watchers,
            rates,
            seconds,
            addresses,
            sipp_watchers,
            no_pin,
        } => {
            let w = crate::bench_presence::Workload {
                presentities,
                watchers_per: watchers,
                rates,
                seconds,
                addresses,
                sipp_watchers,
            };
            tokio::task::spawn_blocking(move || crate::bench_presence::presence(w, !no_pin)).await?
        }
        Which::Identity { count, seconds, no_pin } => crate::bench_identity::identity(count, seconds, !no_pin),
        Which::Broadcast { endpoints, uas, no_pin } => crate::bench_channels::broadcast(endpoints, uas, !no_pin).await,
        Which::Dial { calls } => crate::bench_dial::dial(calls).await,
        Which::Mixer {
            codecs,
            room,
            talkers,
            seconds,
            steps,
            no_pin,
        } => {
            let b = crate::bench_mixer::MixerBench {
                codecs,
                room,
                talkers,
                seconds,
                steps,
                pin: !no_pin,
            };
            tokio::task::spawn_blocking(move || crate::bench_mixer::mixer(b)).await?
        }
        Which::Push { dispatches, concurrency } => crate::bench_push::push(dispatches, concurrency).await,
        Which::Marquee {
            phones,
            items,
            seconds,
            connections,
            no_pin,
        } => crate::bench_channels::marquee(phones, items, seconds, connections, !no_pin).await,
        Which::Designate { seconds, clients } => crate::bench_designate::designate(seconds, clients).await,
        Which::Rendezvous {
            pending,
            samples,
            pairings,
            no_pin,
        } => crate::bench_rendezvous::rendezvous(pending, samples, pairings, !no_pin),
        Which::Yellow(args) => crate::bench_yellow::yellow(args).await,
        Which::Msilo {
            users,
            per_user,
            inflight,
            endpoints,
            no_pin,
        } => crate::bench_mailbox::msilo(users, per_user, inflight, endpoints, !no_pin).await,
        Which::Deposits {
            concurrent,
            seconds,
            rate,
            no_pin,
        } => crate::bench_mailbox::deposits(concurrent, seconds, rate, !no_pin).await,
        Which::Pages {
            profiles,
            seconds,
            connections,
        } => crate::bench_yellow::pages(profiles, seconds, connections).await,
    }
}
