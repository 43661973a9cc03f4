//! One attempt at a call, as named steps: `announce_ready` (with the
//! media key's fingerprint), `await_partner`, `dial_or_answer` (the SIP
//! call through the PBX) and `agree_key` (the media handshake).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_media::codec::Codec;
use myturn_media::driver::{self as media, MediaHandle};
use myturn_media::keys::{fingerprint_b64, parse_fingerprint_b64, EphemeralKey, PairId, Role};
use myturn_media::session::{Config as MediaConfig, Event as MediaEvent, Session};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, Event as SipEvent};
use myturn_wire::{PeerResponse, Role as WireRole, Status};
use rand_core::{OsRng, RngCore};

use super::{Call, Client, Progress};
use crate::{ClientError, PbxError};

/// Bound on the key agreement once the call is up.
const HANDSHAKE: Duration = Duration::from_secs(20);

/// The partner the server drew for this user, checked.
struct Partner {
    peer: PeerResponse,
    pair_id: PairId,
    /// The media key fingerprint the pairing server vouched for.
    fingerprint: Option<[u8; 32]>,
}

impl Partner {
    /// The SDP key must be the one the pairing server vouched for.
    fn check_vouched_key(&self, remote: &Sdp) -> Result<(), ClientError> {
        match (&self.peer.peer.media_key, &remote.key) {
            (Some(want), Some(got)) if want != got => Err(ClientError::Protocol(
                "the partner's SDP key differs from the paired one".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The SIP call once answered: its handle, its Call-ID, the partner's
/// SDP, and the SIP events that came meanwhile about something else (a
/// media move among them applies before the key agreement).
struct Dialog {
    call: CallHandle,
    sip_call_id: String,
    remote: Sdp,
    skipped: Vec<SipEvent>,
}

/// This side of the media: where it listens, at what rate, with which
/// key; what goes into its SDP.
struct OurMedia<'a> {
    addr: SocketAddr,
    rate: u32,
    fingerprint: &'a str,
    /// Opus is offered beside L16.
    opus: bool,
}

impl OurMedia<'_> {
    /// This side's SDP: an answer to `offer`, or an offer at `rate`; with
    /// Opus beside L16 when this side offers it (and, in an answer, the
    /// offer has it).
    fn sdp(&self, offer: Option<&Sdp>) -> String {
        let key = Some(self.fingerprint.to_owned());
        let id = OsRng.next_u64() >> 1;
        let s = match (offer, self.opus) {
            (Some(o), true) => Sdp::answer_with_opus(o, self.addr, key, id),
            (Some(o), false) => Sdp::answer(o, self.addr, key, id),
            (None, true) => Sdp::new(self.addr, self.rate, key, id).with_opus(),
            (None, false) => Sdp::new(self.addr, self.rate, key, id),
        };
        s.render()
    }
}

impl Client {
    /// One attempt at a call, as named steps. A step that fails returns
    /// its error and leaves any SIP call it made in `pending_sip`, for
    /// [`Client::ready_and_call`] to cancel.
    pub(super) async fn set_up_call(&mut self) -> Result<Call, ClientError> {
        let key = EphemeralKey::generate(&mut OsRng);
        let fp = fingerprint_b64(&key.public());
        let t_ready = Instant::now();
        self.announce_ready(&fp).await?;
        let partner = self.await_partner().await?;
        let pairing_ms = t_ready.elapsed().as_secs_f64() * 1e3;
        let media_socket = tokio::net::UdpSocket::bind((self.bind_ip, 0))
            .await
            .map_err(|e| ClientError::io("media socket", e))?;
        let media_addr = media_socket.local_addr()?;
        let t_setup = Instant::now();
        let ours = OurMedia {
            addr: media_addr,
            rate: self.rate,
            fingerprint: &fp,
            opus: self.codecs.contains(&Codec::Opus),
        };
        let dialog = self.dial_or_answer(&partner.peer, &ours).await?;
        let setup_ms = t_setup.elapsed().as_secs_f64() * 1e3;
        partner.check_vouched_key(&dialog.remote)?;
        let t_hs = Instant::now();
        let (media, sas, codec) = self.agree_key(&partner, &dialog, key, media_socket).await?;
        let handshake_ms = t_hs.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            sip_call_id = %dialog.sip_call_id,
            pair_id = %partner.pair_id,
            peer = %partner.peer.peer.name,
            remote_media = %dialog.remote.media,
            payload_type = dialog.remote.payload_type,
            codec = codec.name(),
            "call connected"
        );
        self.tell(Progress::Connected { sas: sas.clone() });
        Ok(Call {
            sip_call: dialog.call,
            sip_call_id: dialog.sip_call_id,
            peer: partner.peer,
            media,
            sas,
            rate: dialog.remote.rate,
            codec,
            pairing_ms,
            setup_ms,
            handshake_ms,
        })
    }

    /// `ready`, with the fingerprint of this call's media key.
    async fn announce_ready(&mut self, fingerprint: &str) -> Result<(), ClientError> {
        let me = self.api.ready(fingerprint, self.interests.as_ref()).await?;
        self.tell(Progress::Waiting {
            interests: me.interests,
            only: self.interests.as_ref().is_some_and(|i| i.only),
        });
        Ok(())
    }

    /// Long-polls for the partner, relaying the lobby chat meanwhile.
    async fn await_partner(&mut self) -> Result<Partner, ClientError> {
        let peer = loop {
            let api = self.api.clone();
            let poll = api.peer(15);
            tokio::pin!(poll);
            let got = loop {
                tokio::select! {
                    r = &mut poll => break r?,
                    _ = self.wait_event(Duration::from_secs(3600)), if self.events.is_some() => {}
                }
            };
            if let Some(p) = got {
                break p;
            }
        };
        let pair_id = PairId::from_hex(&peer.pair_id).ok_or_else(|| {
            ClientError::Protocol(format!("bad pair id `{}` from the server", peer.pair_id))
        })?;
        self.tell(Progress::Paired {
            peer: peer.peer.name.clone(),
            role: peer.role,
            shared: peer.shared_interests.clone(),
        });
        let fingerprint = match &peer.peer.media_key {
            Some(k) => Some(
                parse_fingerprint_b64(k)
                    .ok_or_else(|| ClientError::Protocol("bad peer media key".into()))?,
            ),
            None => None,
        };
        Ok(Partner {
            peer,
            pair_id,
            fingerprint,
        })
    }

    /// The SIP call: the callee answers the partner's INVITE, the caller
    /// dials once the partner listens.
    async fn dial_or_answer(
        &mut self,
        peer: &PeerResponse,
        ours: &OurMedia<'_>,
    ) -> Result<Dialog, ClientError> {
        if peer.role == WireRole::Caller {
            self.await_partner_listening().await?;
        }
        self.api
            .status(myturn_wire::RequestedStatus::ReadyToTalk, None)
            .await?;
        match peer.role {
            WireRole::Callee => self.answer_partner(ours).await,
            WireRole::Caller => self.dial_partner(peer, ours).await,
        }
    }

    /// Callee: answers the partner's INVITE.
    async fn answer_partner(&mut self, ours: &OurMedia<'_>) -> Result<Dialog, ClientError> {
        let mut skipped = Vec::new();
        let (call, sip_call_id, offer) = self
            .sip_or_left(self.answer_timeout, &mut skipped, |e| match e {
                SipEvent::IncomingCall {
                    call,
                    sip_call_id,
                    offer,
                    ..
                } => Some((*call, sip_call_id.clone(), offer.clone())),
                _ => None,
            })
            .await
            .ok_or(ClientError::Timeout("the partner's call"))??;
        self.pending_sip = Some(call);
        let offer = offer.ok_or_else(|| ClientError::Protocol("INVITE without SDP".into()))?;
        self.sip.answer(call, &ours.sdp(Some(&offer))).await?;
        Ok(Dialog {
            call,
            sip_call_id,
            remote: offer,
            skipped,
        })
    }

    /// Caller: waits until the callee listens. Its status says so, pushed
    /// as `peer_ready_to_talk` (checked again every 500 ms in case the
    /// push came before we looked, or there is no event stream).
    async fn await_partner_listening(&mut self) -> Result<(), ClientError> {
        let t0 = Instant::now();
        loop {
            let p = match self.api.peer(0).await {
                Ok(Some(p)) => p,
                // The pair ended meanwhile (this user is back to busy, or
                // waiting again).
                Ok(None) | Err(ClientError::Server { status: 409, .. }) => {
                    return Err(ClientError::PeerLeft)
                }
                Err(e) => return Err(e),
            };
            if matches!(p.peer_status, Status::ReadyToTalk | Status::InCall) {
                return Ok(());
            }
            if t0.elapsed() > self.answer_timeout {
                return Err(ClientError::Timeout("the partner to get ready"));
            }
            self.wait_event(Duration::from_millis(500)).await?;
        }
    }

    /// Caller: dials the partner's extension and waits for the answer.
    async fn dial_partner(
        &mut self,
        peer: &PeerResponse,
        ours: &OurMedia<'_>,
    ) -> Result<Dialog, ClientError> {
        let call = self
            .sip
            .invite(&peer.peer.extension, &ours.sdp(None))
            .await?;
        self.pending_sip = Some(call);
        let progress = self.progress.clone();
        let mut skipped = Vec::new();
        let (answer, sip_call_id) = self
            .sip_or_left(self.answer_timeout, &mut skipped, |e| match e {
                SipEvent::Ringing { call: c } if *c == call => {
                    if let Some(tx) = &progress {
                        let _ = tx.send(Progress::Ringing);
                    }
                    None
                }
                SipEvent::Answered {
                    call: c,
                    answer,
                    sip_call_id,
                } if *c == call => Some(Ok((answer.clone(), sip_call_id.clone()))),
                SipEvent::CallFailed {
                    call: c,
                    code,
                    reason,
                } if *c == call => Some(Err(ClientError::from(PbxError::CallFailed {
                    code: *code,
                    reason: reason.clone(),
                }))),
                _ => None,
            })
            .await
            // Gone before answering, or never answered: the caller of
            // `set_up_call` cancels.
            .ok_or(ClientError::Timeout("the partner to answer"))???;
        let remote = answer.ok_or_else(|| ClientError::Protocol("answer without SDP".into()))?;
        Ok(Dialog {
            call,
            sip_call_id,
            remote,
            skipped,
        })
    }

    /// Starts the media session on the partner's address and runs the key
    /// agreement, bounded by [`HANDSHAKE`], applying media moves meanwhile.
    async fn agree_key(
        &mut self,
        partner: &Partner,
        dialog: &Dialog,
        key: EphemeralKey,
        socket: tokio::net::UdpSocket,
    ) -> Result<(MediaHandle, String, Codec), ClientError> {
        let cfg = MediaConfig {
            role: match partner.peer.role {
                WireRole::Caller => Role::Initiator,
                WireRole::Callee => Role::Responder,
            },
            pair_id: partner.pair_id,
            peer_fingerprint: partner.fingerprint,
            payload_type: dialog.remote.payload_type,
            opus_payload_type: dialog.remote.opus,
            ssrc: OsRng.next_u32(),
            samples_per_frame: dialog.remote.rate / 50,
            // Opus goes into the sealed handshake only when the partner's
            // SDP carried it: a path (a PBX leg) that offers only L16 gets
            // PCM16. What the two ends then agree on is sealed; a rewritten
            // payload type or a stripped fmtp cannot make them disagree.
            codecs: if dialog.remote.opus.is_some() {
                self.codecs.clone()
            } else {
                vec![Codec::Pcm16]
            },
        };
        let mut session = Session::with_key(cfg, key, Box::new(OsRng), Instant::now());
        session.set_peer_timeout(self.peer_timeout);
        let mut media = media::start_session(socket, dialog.remote.media, session)?;
        let sip_call = dialog.call;
        // A re-INVITE or UPDATE that came while the call was set up (a
        // back-to-back agent moving its media anchor) applies first.
        if let Some(sdp) = dialog.skipped.iter().rev().find_map(|e| match e {
            SipEvent::RemoteMediaChanged { call, sdp } if *call == sip_call => Some(sdp),
            _ => None,
        }) {
            let _ = media.retarget(sdp.media, sdp.payload_type, sdp.opus).await;
        }
        let deadline = tokio::time::Instant::now() + HANDSHAKE;
        let (sas, codec) = loop {
            tokio::select! {
                ev = media.events.recv() => match ev {
                    Some(MediaEvent::Established { sas, codec, .. }) => break (sas, codec),
                    Some(MediaEvent::Failed(f)) => return Err(ClientError::Media(f)),
                    Some(_) => {}
                    None => return Err(ClientError::Timeout("the key agreement")),
                },
                ev = self.sip.events.recv() => match ev {
                    Some(SipEvent::RemoteMediaChanged { call, sdp }) if call == sip_call => {
                        let _ = media.retarget(sdp.media, sdp.payload_type, sdp.opus).await;
                    }
                    Some(SipEvent::CallEnded { call, .. }) if call == sip_call => {
                        return Err(ClientError::PeerLeft);
                    }
                    _ => {}
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ClientError::Timeout("the key agreement"));
                }
            }
        };
        Ok((media, sas, codec))
    }
}
