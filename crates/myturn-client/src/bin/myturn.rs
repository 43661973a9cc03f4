//! `myturn`: the myTurn client. Thin: flags, logging, then the library.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use myturn_client::plain::{self, Input, Output, PlainOptions};
use myturn_client::tls::Trust;
use myturn_media::codec::Codec;

/// myTurn: talk to a random stranger over an end-to-end encrypted call.
///
/// Registers NAME with the server, registers over SIP with the credentials
/// it hands out, and then, on `ready`, pairs you with a random waiting
/// user and calls them through the PBX. Audio and chat are encrypted end
/// to end (x25519 + HKDF, AES-256-CBC + HMAC); compare the SAS aloud to
/// be sure nobody sits in between.
#[derive(Debug, Parser)]
#[command(name = "myturn", version, about, long_about, after_help = KEYS)]
struct Args {
    /// The myTurn server's URL.
    #[arg(long, env = "MYTURN_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Also trust this CA certificate (PEM) for an https:// server, on top
    /// of the web's root certificates: for a server with a private CA.
    #[arg(long, env = "MYTURN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Your nickname: a letter, then letters, digits, `_` or `-` (3–32).
    /// The full-screen interface logs in with it at once (a refused name
    /// is asked again, with the reason); without it, it asks.
    #[arg(long)]
    name: Option<String>,
    /// Line mode: commands on stdin (ready, say TEXT, mute, unmute, stats,
    /// hangup, next, quit), one event per line on stdout. For scripts and
    /// screen readers.
    #[arg(long)]
    plain: bool,
    /// Send this WAV file (PCM16) as your voice, instead of a microphone.
    #[arg(long)]
    input_wav: Option<PathBuf>,
    /// Write what you hear to this WAV file, instead of a speaker.
    #[arg(long)]
    output_wav: Option<PathBuf>,
    /// Call sample rate: 8000 (narrowband) or 16000 (wideband L16).
    #[arg(long, default_value_t = 8000, value_parser = parse_rate)]
    rate: u32,
    /// The codec to offer: `opus` (Opus with in-band FEC, then PCM16 for a
    /// partner or path that has only that) or `pcm16` (PCM16 only, 5–10×
    /// the bandwidth). Which one a call uses is agreed inside the sealed
    /// key agreement.
    #[arg(long, default_value = "opus", value_parser = parse_codec)]
    codec: CodecList,
    /// No audio at all: chat only.
    #[arg(long)]
    no_audio: bool,
    /// No echo cancellation, noise suppression or gain control on the
    /// sound devices (on by default with devices; WAV files never get it).
    #[arg(long)]
    no_audio_processing: bool,
    /// List sound devices and exit.
    #[arg(long)]
    list_devices: bool,
    /// Record two seconds from the microphone, play them back, show both
    /// levels, and exit (non-zero if the microphone is silent).
    #[arg(long)]
    check_audio: bool,
    /// Microphone to use (see --list-devices).
    #[arg(long)]
    input_device: Option<String>,
    /// Speaker to use (see --list-devices).
    #[arg(long)]
    output_device: Option<String>,
    /// Local address for SIP and media sockets. By default, the address of
    /// this host's route to the PBX, so no flag is needed on any network.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// End a call when nothing authentic arrives from the partner for this
    /// many seconds (the partner's client sends a keep-alive every second,
    /// also while muted, so only a dead partner or network is this quiet).
    #[arg(long, default_value_t = 5.0, value_parser = parse_peer_timeout)]
    peer_timeout: f64,
    /// Seconds to wait on a new partner at each step of setting the call
    /// up (getting ready, calling, answering). A partner this slow is
    /// given up on, and you are paired with someone else.
    #[arg(long, default_value_t = 10.0, value_parser = parse_answer_timeout)]
    answer_timeout: f64,
    /// Topics you would like to talk about, comma-separated ("music,
    /// rust"): you are paired among the waiting people who share one, and
    /// after --interest-wait with anyone. Up to 10, each 2–24 letters,
    /// digits, spaces or '-'. In line mode `ready music, rust` changes
    /// them; in the full-screen interface, `i`.
    #[arg(long, value_parser = parse_interests)]
    interests: Option<InterestList>,
    /// Seconds to wait for someone who shares an interest before being
    /// paired with anyone (at most the server's own wait, 8 s by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=600))]
    interest_wait: Option<u64>,
    /// Only people who share an interest: never fall back to anyone.
    #[arg(long, requires = "interests")]
    only_interests: bool,
}

/// The full-screen interface's keys, under `--help` (the README has the
/// same table).
const KEYS: &str = "\
Keys of the full-screen interface (each screen's bottom line says them):
  main screen  r: ready   i: interests   d: sound devices   q, Esc: quit
  waiting      Enter: say it in the lobby   Esc: stop waiting   Ctrl-C: quit
  in a call    Enter: send   m: mic on/off   q: hang up   n: next partner
               Ctrl-C: quit
What would end a call or a wait asks first (y: yes, any other key: no);
Ctrl-C twice quits at once.";

/// `--interests`, normalised and checked.
#[derive(Debug, Clone)]
struct InterestList(Vec<String>);

fn parse_interests(s: &str) -> Result<InterestList, String> {
    myturn_client::Interests::parse(s)
        .map(InterestList)
        .map_err(|e| e.to_string())
}

fn parse_answer_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (2.0..=120.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}`: give seconds from 2 to 120")),
    }
}

fn parse_peer_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (2.0..=600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}`: give seconds from 2 to 600 (keep-alives come every second)"
        )),
    }
}

/// `--codec`: what to offer, most preferred first.
#[derive(Debug, Clone)]
struct CodecList(Vec<Codec>);

fn parse_codec(s: &str) -> Result<CodecList, String> {
    match s {
        "opus" if Codec::built().contains(&Codec::Opus) => {
            Ok(CodecList(vec![Codec::Opus, Codec::Pcm16]))
        }
        "opus" => Err("this myturn was built without Opus (the `opus` feature); use pcm16".into()),
        "pcm16" | "l16" => Ok(CodecList(vec![Codec::Pcm16])),
        _ => Err("the codec is opus or pcm16".into()),
    }
}

fn parse_rate(s: &str) -> Result<u32, String> {
    match s {
        "8000" => Ok(8000),
        "16000" => Ok(16_000),
        _ => Err("the rate is 8000 or 16000".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MYTURN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_writer(std::io::stderr)
        .init();
    #[cfg(not(feature = "audio"))]
    if args.list_devices
        || args.check_audio
        || args.input_device.is_some()
        || args.output_device.is_some()
    {
        eprintln!(
            "myturn: this build has no sound-device support; use --input-wav/--output-wav, or use the default build (with sound: needs ALSA's headers to build)"
        );
        return ExitCode::from(2);
    }
    #[cfg(feature = "audio")]
    if args.check_audio {
        let r = myturn_client::soundcheck::check(
            args.input_device.as_deref(),
            args.output_device.as_deref(),
            2,
            |line| println!("{line}"),
        );
        return match r {
            Ok(r) if r.input.is_silent() => {
                println!(
                    "the microphone is silent: check that it is plugged in and not muted, or pick another with --input-device (see --list-devices)"
                );
                ExitCode::from(1)
            }
            Ok(_) => {
                println!("audio ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("myturn: {e}");
                ExitCode::from(1)
            }
        };
    }
    // The device list only when it is asked for or a device is named: a
    // machine without sound cards still runs with WAV files or chat only.
    #[cfg(feature = "audio")]
    if args.list_devices || args.input_device.is_some() || args.output_device.is_some() {
        let devices = match myturn_media::audio::list_devices() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("myturn: cannot list sound devices: {e}");
                return ExitCode::from(2);
            }
        };
        if args.list_devices {
            if devices.is_empty() {
                println!("no sound devices found: chat only with --no-audio, or WAV files with --input-wav/--output-wav");
                return ExitCode::from(1);
            }
            for d in &devices {
                let kind = match (d.input, d.output) {
                    (true, true) => "input+output",
                    (true, false) => "input",
                    (false, true) => "output",
                    (false, false) => "unusable",
                };
                println!("{kind:13} {}", d.name);
            }
            return ExitCode::SUCCESS;
        }
        for (wanted, input) in [(&args.input_device, true), (&args.output_device, false)] {
            if let Some(w) = wanted {
                if !devices
                    .iter()
                    .any(|d| &d.name == w && if input { d.input } else { d.output })
                {
                    eprintln!(
                        "myturn: no {} device named `{w}` (see --list-devices)",
                        if input { "input" } else { "output" }
                    );
                    return ExitCode::from(2);
                }
            }
        }
    }
    let trust = match Trust::from_ca_cert(args.ca_cert.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("myturn: {e}");
            return ExitCode::from(2);
        }
    };
    if myturn_client::tls::is_cleartext_remote(&args.server) {
        eprintln!(
            "myturn: warning: {} is plain HTTP: your SIP password and tokens cross the network \
             in cleartext. Ask the operator for the https:// address.",
            args.server
        );
    }
    let name = match (args.name, args.plain) {
        (Some(n), _) => n,
        (None, false) => String::new(), // asked on the Login screen
        (None, true) => {
            eprintln!("myturn: --plain needs --name NICKNAME");
            return ExitCode::from(2);
        }
    };
    // The sound devices, where no WAV file stands in (none in a build
    // without them).
    #[cfg(feature = "audio")]
    let (mic, speaker) = (
        Input::Device(args.input_device.clone()),
        Output::Device(args.output_device.clone()),
    );
    #[cfg(not(feature = "audio"))]
    let (mic, speaker) = (Input::None, Output::None);
    let opts = PlainOptions {
        server: args.server,
        trust,
        name,
        // Unspecified: the route to the PBX decides (see `Client::connect`).
        bind: args
            .bind
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        rate: args.rate,
        codecs: args.codec.0,
        processing: !args.no_audio_processing,
        peer_timeout: std::time::Duration::from_secs_f64(args.peer_timeout),
        answer_timeout: std::time::Duration::from_secs_f64(args.answer_timeout),
        interests: args
            .interests
            .map(|InterestList(tags)| myturn_client::Interests {
                tags,
                wait_secs: args.interest_wait,
                only: args.only_interests,
            }),
        input: audio_side(
            args.no_audio,
            args.input_wav.as_ref(),
            Input::None,
            Input::Wav,
            mic,
        ),
        output: audio_side(
            args.no_audio,
            args.output_wav.as_ref(),
            Output::None,
            Output::Wav,
            speaker,
        ),
    };
    #[cfg(not(feature = "audio"))]
    if !args.no_audio && (args.input_wav.is_none() || args.output_wav.is_none()) {
        eprintln!("myturn: built without sound devices: without --input-wav/--output-wav that side of the audio is off (chat works)");
    }
    let result = if args.plain {
        plain::run(opts).await
    } else {
        myturn_client::tui::run(opts).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("myturn: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where one side of the audio comes from or goes: nowhere with
/// `--no-audio`, else the WAV file if one is given, else `device`.
fn audio_side<T>(
    no_audio: bool,
    wav: Option<&PathBuf>,
    none: T,
    file: fn(PathBuf) -> T,
    device: T,
) -> T {
    match (wav, no_audio) {
        (_, true) => none,
        (Some(p), false) => file(p.clone()),
        (None, false) => device,
    }
}
