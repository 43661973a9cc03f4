/**
 * One call's media session, for the page, with its playout (the jitter
 * buffer and concealment the terminal client plays through). See the
 * crate docs.
 */
export class Call {
    static __wrap(ptr) {
        const obj = Object.create(Call.prototype);
        obj.__wbg_ptr = ptr;
        CallFinalization.register(obj, obj.__wbg_ptr, obj);
        return obj;
    }
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        CallFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_call_free(ptr, 0);
    }
    /**
     * A datagram from the network (malformed or forged ones are dropped
     * and counted in [`Call::stats`]).
     * @param {number} now_ms
     * @param {Uint8Array | number[]} datagram
     */
    handle_datagram(now_ms, datagram) {
        const val2 = +now_ms;
        const ptr0 = passArray8ToWasm0(datagram, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        wasm.call_handle_datagram(this.__wbg_ptr, val2, ptr0, len0);
    }
    /**
     * The time has come (see [`Call::poll_timeout`]).
     * @param {number} now_ms
     */
    handle_timeout(now_ms) {
        wasm.call_handle_timeout(this.__wbg_ptr, now_ms);
    }
    /**
     * Whether the keys are agreed and confirmed.
     * @returns {boolean}
     */
    is_established() {
        const ret = wasm.call_is_established(this.__wbg_ptr);
        return ret !== 0;
    }
    /**
     * This side's key fingerprint, in hex (for SDP's `a=myturn-key`).
     * @returns {string}
     */
    local_fingerprint() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.call_local_fingerprint(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * A session for one pair with a fresh key: `role` is `"caller"`
     * (the initiator) or `"callee"`, `pair_id` the pairing server's 32
     * hex digits, then the L16 payload type, this side's SSRC and the
     * samples per 20 ms frame (160 at 8 kHz, 320 at 16 kHz); `now_ms` the
     * page's time now.
     * @param {string} role
     * @param {string} pair_id
     * @param {number} payload_type
     * @param {number} ssrc
     * @param {number} samples_per_frame
     * @param {number} now_ms
     */
    constructor(role, pair_id, payload_type, ssrc, samples_per_frame, now_ms) {
        const val3 = +payload_type;
        const val4 = +ssrc;
        const val5 = +samples_per_frame;
        const val6 = +now_ms;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(role, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(pair_id, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.call_new(ptr0, len0, ptr1, len1, val3, val4, val5, val6);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        this.__wbg_ptr = ret[0];
        CallFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
    /**
     * The playout's counters as JSON: codec, frames played, concealed
     * and recovered, loss and the playout delay.
     * @returns {string}
     */
    playout_stats() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.call_playout_stats(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * The next event as JSON, if any. Audio frames also go into the
     * playout ([`Call::pop_playout`]).
     * @returns {string | undefined}
     */
    poll_event() {
        const ret = wasm.call_poll_event(this.__wbg_ptr);
        let v1;
        if (ret[0] !== 0) {
            v1 = getStringFromWasm0(ret[0], ret[1]);
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        }
        return v1;
    }
    /**
     * When to call [`Call::handle_timeout`] next, in page milliseconds.
     * @returns {number | undefined}
     */
    poll_timeout() {
        const ret = wasm.call_poll_timeout(this.__wbg_ptr);
        return ret[0] === 0 ? undefined : ret[1];
    }
    /**
     * The next datagram to send, if any.
     * @returns {Uint8Array | undefined}
     */
    poll_transmit() {
        const ret = wasm.call_poll_transmit(this.__wbg_ptr);
        let v1;
        if (ret[0] !== 0) {
            v1 = getArrayU8FromWasm0(ret[0], ret[1]).slice();
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        }
        return v1;
    }
    /**
     * The next 20 ms to play (call every 20 ms): the received frame, a
     * concealed one, or silence; always a whole frame.
     * @param {number} now_ms
     * @returns {Int16Array}
     */
    pop_playout(now_ms) {
        const ret = wasm.call_pop_playout(this.__wbg_ptr, now_ms);
        var v1 = getArrayI16FromWasm0(ret[0], ret[1]).slice();
        wasm.__wbindgen_free(ret[0], ret[1] * 2, 2);
        return v1;
    }
    /**
     * Sends one 20 ms frame of PCM16 (little-endian bytes) once
     * established.
     * @param {Uint8Array | number[]} pcm
     */
    send_audio(pcm) {
        const ptr0 = passArray8ToWasm0(pcm, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.call_send_audio(this.__wbg_ptr, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * [`Call::send_audio`] from samples (an `Int16Array` of one frame).
     * @param {Int16Array | number[]} samples
     */
    send_samples(samples) {
        const ptr0 = passArray16ToWasm0(samples, wasm.__wbindgen_malloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.call_send_samples(this.__wbg_ptr, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Sends a chat message (delivered once, in order) once established.
     * @param {number} now_ms
     * @param {string} text
     */
    send_text(now_ms, text) {
        const val2 = +now_ms;
        const ptr0 = passStringToWasm0(text, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        const ret = wasm.call_send_text(this.__wbg_ptr, val2, ptr0, len0);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * How long the partner may be silent (no packet at all: the sender
     * keeps a comfort packet going in pauses) before the call fails with
     * `peer_silent`, in seconds; the terminal client's default is 5.
     * @param {number} secs
     */
    set_peer_timeout(secs) {
        wasm.call_set_peer_timeout(this.__wbg_ptr, secs);
    }
    /**
     * The session's counters as JSON (frames, bytes, datagrams dropped
     * and why).
     * @returns {string}
     */
    stats() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.call_stats(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * [`Call::new`] with the key announced at `ready`, and the partner's
     * fingerprint as the pairing server vouched for it (base64url, its
     * `media_key`; empty when it gave none): a key agreement with any
     * other key fails.
     * @param {MediaKey} key
     * @param {string} role
     * @param {string} pair_id
     * @param {string} peer_fingerprint
     * @param {number} payload_type
     * @param {number} samples_per_frame
     * @param {number} now_ms
     * @returns {Call}
     */
    static with_key(key, role, pair_id, peer_fingerprint, payload_type, samples_per_frame, now_ms) {
        const val5 = +payload_type;
        const val6 = +samples_per_frame;
        const val7 = +now_ms;
        let ptr0, ptr1, len1, ptr2, len2, ptr3, len3;
        try {
            _assertClass(key, MediaKey);
            ptr0 = key.__destroy_into_raw();
            ptr1 = passStringToWasm0(role, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(pair_id, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
            ptr3 = passStringToWasm0(peer_fingerprint, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len3 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr3) { wasm.__wbindgen_free(ptr3, len3 * 1, 1); }
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) wasm.__wbg_mediakey_free(ptr0, 1);
            throw e;
        }
        const ret = wasm.call_with_key(ptr0, ptr1, len1, ptr2, len2, ptr3, len3, val5, val6, val7);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return Call.__wrap(ret[0]);
    }
}
if (Symbol.dispose) Call.prototype[Symbol.dispose] = Call.prototype.free;

/**
 * This call's media key, made when the page says `ready` (its
 * fingerprint goes to the pairing server and into the SDP), before the
 * role and the pair are known; [`Call::with_key`] takes it.
 */
export class MediaKey {
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        MediaKeyFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_mediakey_free(ptr, 0);
    }
    /**
     * Its fingerprint, base64url: `ready`'s `media_key` and SDP's
     * `a=myturn-key`.
     * @returns {string}
     */
    fingerprint() {
        let deferred1_0;
        let deferred1_1;
        try {
            const ret = wasm.mediakey_fingerprint(this.__wbg_ptr);
            deferred1_0 = ret[0];
            deferred1_1 = ret[1];
            return getStringFromWasm0(ret[0], ret[1]);
        } finally {
            wasm.__wbindgen_free(deferred1_0, deferred1_1, 1);
        }
    }
    /**
     * A fresh x25519 key, from the browser's `crypto.getRandomValues`.
     */
    constructor() {
        const ret = wasm.mediakey_new();
        this.__wbg_ptr = ret;
        MediaKeyFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
}
if (Symbol.dispose) MediaKey.prototype[Symbol.dispose] = MediaKey.prototype.free;

/**
 * The SIP agent for the page, over SIP over WebSocket. See the crate
 * docs.
 */
export class Sip {
    __destroy_into_raw() {
        const ptr = this.__wbg_ptr;
        this.__wbg_ptr = 0;
        SipFinalization.unregister(this);
        return ptr;
    }
    free() {
        const ptr = this.__destroy_into_raw();
        wasm.__wbg_sip_free(ptr, 0);
    }
    /**
     * Answers the incoming call `call` (from an `incoming_call` event):
     * the offer's payload type and rate, on `media`, with this side's key
     * fingerprint.
     * @param {number} now_ms
     * @param {number} call
     * @param {string} media
     * @param {string} fingerprint
     */
    answer(now_ms, call, media, fingerprint) {
        const val3 = +now_ms;
        const val4 = +call;
        let ptr0, len0, ptr1, len1;
        try {
            ptr0 = passStringToWasm0(media, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(fingerprint, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.sip_answer(this.__wbg_ptr, val3, val4, ptr0, len0, ptr1, len1);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * A message the WebSocket received.
     * @param {number} now_ms
     * @param {string} message
     */
    handle_message(now_ms, message) {
        const val2 = +now_ms;
        const ptr0 = passStringToWasm0(message, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
        const len0 = WASM_VECTOR_LEN;
        wasm.sip_handle_message(this.__wbg_ptr, val2, ptr0, len0);
    }
    /**
     * The time has come (see [`Sip::poll_timeout`]).
     * @param {number} now_ms
     */
    handle_timeout(now_ms) {
        wasm.sip_handle_timeout(this.__wbg_ptr, now_ms);
    }
    /**
     * Ends the call `call` whatever its state (CANCEL, a refusal or BYE).
     * @param {number} now_ms
     * @param {number} call
     */
    hangup(now_ms, call) {
        const ret = wasm.sip_hangup(this.__wbg_ptr, now_ms, call);
        if (ret[1]) {
            throw takeFromExternrefTable0(ret[0]);
        }
    }
    /**
     * Calls `target` (the partner's extension) with an offer of L16 at
     * `rate` on `media` (`ip:port`, the media bridge's address) carrying
     * the media key fingerprint `fingerprint`; the call's handle.
     * @param {number} now_ms
     * @param {string} target
     * @param {string} media
     * @param {number} rate
     * @param {string} fingerprint
     * @returns {number}
     */
    invite(now_ms, target, media, rate, fingerprint) {
        const val4 = +now_ms;
        const val5 = +rate;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passStringToWasm0(target, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(media, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(fingerprint, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.sip_invite(this.__wbg_ptr, val4, ptr0, len0, ptr1, len1, val5, ptr2, len2);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        return ret[0] >>> 0;
    }
    /**
     * An agent for `username`/`password` (the SIP credentials the
     * pairing server's `POST /v1/users` gives) at `domain` (its `ip:port`
     * domain, the built-in PBX, parameters ignored); `now_ms` the page's
     * time now.
     * @param {string} username
     * @param {string} password
     * @param {string} domain
     * @param {number} now_ms
     */
    constructor(username, password, domain, now_ms) {
        const val4 = +now_ms;
        let ptr0, len0, ptr1, len1, ptr2, len2;
        try {
            ptr0 = passStringToWasm0(username, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len0 = WASM_VECTOR_LEN;
            ptr1 = passStringToWasm0(password, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len1 = WASM_VECTOR_LEN;
            ptr2 = passStringToWasm0(domain, wasm.__wbindgen_malloc, wasm.__wbindgen_realloc);
            len2 = WASM_VECTOR_LEN;
        } catch (e) {
            if (ptr2) { wasm.__wbindgen_free(ptr2, len2 * 1, 1); }
            if (ptr1) { wasm.__wbindgen_free(ptr1, len1 * 1, 1); }
            if (ptr0) { wasm.__wbindgen_free(ptr0, len0 * 1, 1); }
            throw e;
        }
        const ret = wasm.sip_new(ptr0, len0, ptr1, len1, ptr2, len2, val4);
        if (ret[2]) {
            throw takeFromExternrefTable0(ret[1]);
        }
        this.__wbg_ptr = ret[0];
        SipFinalization.register(this, this.__wbg_ptr, this);
        return this;
    }
    /**
     * The next agent event as JSON, if any: `registered`,
     * `registration_failed` (`code`, `reason`), `unregistered`,
     * `incoming_call` (`call`, `from`, `offer`), `ringing`, `answered`
     * (`call`, `answer`), `confirmed`, `call_failed` (`call`, `code`,
     * `reason`), `remote_media_changed` (`call`, `sdp`), `call_ended`
     * (`call`, `by`: `local`, `remote` or `session_expired`), or `other`.
     * A session description is `{media, payload_type, rate, key}`, or
     * null when the message had none.
     * @returns {string | undefined}
     */
    poll_event() {
        const ret = wasm.sip_poll_event(this.__wbg_ptr);
        let v1;
        if (ret[0] !== 0) {
            v1 = getStringFromWasm0(ret[0], ret[1]);
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        }
        return v1;
    }
    /**
     * When to call [`Sip::handle_timeout`] next, in page milliseconds.
     * @returns {number | undefined}
     */
    poll_timeout() {
        const ret = wasm.sip_poll_timeout(this.__wbg_ptr);
        return ret[0] === 0 ? undefined : ret[1];
    }
    /**
     * The next message to send down the WebSocket, if any.
     * @returns {string | undefined}
     */
    poll_transmit() {
        const ret = wasm.sip_poll_transmit(this.__wbg_ptr);
        let v1;
        if (ret[0] !== 0) {
            v1 = getStringFromWasm0(ret[0], ret[1]);
            wasm.__wbindgen_free(ret[0], ret[1] * 1, 1);
        }
        return v1;
    }
    /**
     * Registers (and keeps the registration fresh).
     * @param {number} now_ms
     */
    register(now_ms) {
        wasm.sip_register(this.__wbg_ptr, now_ms);
    }
    /**
     * Removes the registration (before the page goes).
     * @param {number} now_ms
     */
    unregister(now_ms) {
        wasm.sip_unregister(this.__wbg_ptr, now_ms);
    }
}
if (Symbol.dispose) Sip.prototype[Symbol.dispose] = Sip.prototype.free;
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg___wbindgen_is_function_741ff2bb612836f5: function(arg0) {
            const ret = typeof(arg0) === 'function';
            return ret;
        },
        __wbg___wbindgen_is_object_8b968c3ab8e96595: function(arg0) {
            const val = arg0;
            const ret = typeof(val) === 'object' && val !== null;
            return ret;
        },
        __wbg___wbindgen_is_string_fc456fee5d3317de: function(arg0) {
            const ret = typeof(arg0) === 'string';
            return ret;
        },
        __wbg___wbindgen_is_undefined_be5b34249ff1fc15: function(arg0) {
            const ret = arg0 === undefined;
            return ret;
        },
        __wbg___wbindgen_throw_4c88d8bf264fd984: function(arg0, arg1) {
            throw new Error(getStringFromWasm0(arg0, arg1));
        },
        __wbg_call_a410eb4b59ed5965: function() { return handleError(function (arg0, arg1, arg2) {
            const ret = arg0.call(arg1, arg2);
            return ret;
        }, arguments); },
        __wbg_crypto_23f565a907d30078: function(arg0) {
            const ret = arg0.crypto;
            return ret;
        },
        __wbg_getRandomValues_d2908e0b99612b91: function() { return handleError(function (arg0, arg1) {
            arg0.getRandomValues(arg1);
        }, arguments); },
        __wbg_length_186163212ffe79c3: function(arg0) {
            const ret = arg0.length;
            return ret;
        },
        __wbg_msCrypto_d5f06fad6bf1409b: function(arg0) {
            const ret = arg0.msCrypto;
            return ret;
        },
        __wbg_new_with_length_01b143a7e5dd5a3e: function(arg0) {
            const ret = new Uint8Array(arg0 >>> 0);
            return ret;
        },
        __wbg_node_86166ff8ce1f2002: function(arg0) {
            const ret = arg0.node;
            return ret;
        },
        __wbg_now_e7c6795a7f81e10f: function(arg0) {
            const ret = arg0.now();
            return ret;
        },
        __wbg_performance_7e4e4494fdc9d07a: function(arg0) {
            const ret = arg0.performance;
            return ret;
        },
        __wbg_process_91f425a63f58e399: function(arg0) {
            const ret = arg0.process;
            return ret;
        },
        __wbg_prototypesetcall_13162965d1fe7aa3: function(arg0, arg1, arg2) {
            Uint8Array.prototype.set.call(getArrayU8FromWasm0(arg0, arg1), arg2);
        },
        __wbg_randomFillSync_34b023059e3363de: function() { return handleError(function (arg0, arg1) {
            arg0.randomFillSync(arg1);
        }, arguments); },
        __wbg_require_9a7d8cc2e1d275c0: function() { return handleError(function () {
            const ret = module.require;
            return ret;
        }, arguments); },
        __wbg_static_accessor_GLOBAL_THIS_003ee833af9699fc: function() {
            const ret = typeof globalThis === 'undefined' ? undefined : globalThis;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_GLOBAL_e4293fb22cbe77da: function() {
            const ret = typeof global === 'undefined' ? undefined : global;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_SELF_53bb20457401453d: function() {
            const ret = typeof self === 'undefined' ? undefined : self;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_static_accessor_WINDOW_b5e0810bfecb7feb: function() {
            const ret = typeof window === 'undefined' ? undefined : window;
            return isLikeNone(ret) ? 0 : addToExternrefTable0(ret);
        },
        __wbg_subarray_58f388a9247ac0bb: function(arg0, arg1, arg2) {
            const ret = arg0.subarray(arg1 >>> 0, arg2 >>> 0);
            return ret;
        },
        __wbg_versions_6e128a981b0df859: function(arg0) {
            const ret = arg0.versions;
            return ret;
        },
        __wbindgen_generic_0000000000000001: function(arg0, arg1) {
            // Cast intrinsic for `Ref(Slice(U8)) -> NamedExternref("Uint8Array")`.
            const ret = getArrayU8FromWasm0(arg0, arg1);
            return ret;
        },
        __wbindgen_generic_0000000000000002: function(arg0, arg1) {
            // Cast intrinsic for `Ref(String) -> Externref`.
            const ret = getStringFromWasm0(arg0, arg1);
            return ret;
        },
        __wbindgen_init_externref_table: function() {
            const table = wasm.__wbindgen_externrefs;
            table.set(0, undefined);
            table.set(1024, undefined);
            table.set(1025, null);
            table.set(1026, true);
            table.set(1027, false);
        },
    };
    return {
        __proto__: null,
        "./myturn_web_bg.js": import0,
    };
}

const CallFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_call_free(ptr, 1));
const MediaKeyFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_mediakey_free(ptr, 1));
const SipFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(ptr => wasm.__wbg_sip_free(ptr, 1));

function addToExternrefTable0(obj) {
    const idx = wasm.__externref_table_alloc();
    wasm.__wbindgen_externrefs.set(idx, obj);
    return idx;
}

function _assertClass(instance, klass) {
    if (!(instance instanceof klass)) {
        throw new Error(`expected instance of ${klass.name}`);
    }
}

function getArrayI16FromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return getInt16ArrayMemory0().subarray(ptr / 2, ptr / 2 + len);
}

function getArrayU8FromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return getUint8ArrayMemory0().subarray(ptr / 1, ptr / 1 + len);
}

let cachedInt16ArrayMemory0 = null;
function getInt16ArrayMemory0() {
    if (cachedInt16ArrayMemory0 === null || cachedInt16ArrayMemory0.byteLength === 0) {
        cachedInt16ArrayMemory0 = new Int16Array(wasm.memory.buffer);
    }
    return cachedInt16ArrayMemory0;
}

function getStringFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}

let cachedUint16ArrayMemory0 = null;
function getUint16ArrayMemory0() {
    if (cachedUint16ArrayMemory0 === null || cachedUint16ArrayMemory0.byteLength === 0) {
        cachedUint16ArrayMemory0 = new Uint16Array(wasm.memory.buffer);
    }
    return cachedUint16ArrayMemory0;
}

let cachedUint8ArrayMemory0 = null;
function getUint8ArrayMemory0() {
    if (cachedUint8ArrayMemory0 === null || cachedUint8ArrayMemory0.byteLength === 0) {
        cachedUint8ArrayMemory0 = new Uint8Array(wasm.memory.buffer);
    }
    return cachedUint8ArrayMemory0;
}

function handleError(f, args) {
    try {
        return f.apply(this, args);
    } catch (e) {
        const idx = addToExternrefTable0(e);
        wasm.__wbindgen_exn_store(idx);
    }
}

function isLikeNone(x) {
    return x === undefined || x === null;
}

function passArray16ToWasm0(arg, malloc) {
    const ptr = malloc(arg.length * 2, 2) >>> 0;
    getUint16ArrayMemory0().set(arg, ptr / 2);
    WASM_VECTOR_LEN = arg.length;
    return ptr;
}

function passArray8ToWasm0(arg, malloc) {
    const ptr = malloc(arg.length * 1, 1) >>> 0;
    getUint8ArrayMemory0().set(arg, ptr / 1);
    WASM_VECTOR_LEN = arg.length;
    return ptr;
}

function passStringToWasm0(arg, malloc, realloc) {
    if (realloc === undefined) {
        const buf = cachedTextEncoder.encode(arg);
        const ptr = malloc(buf.length, 1) >>> 0;
        getUint8ArrayMemory0().subarray(ptr, ptr + buf.length).set(buf);
        WASM_VECTOR_LEN = buf.length;
        return ptr;
    }

    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;

    const mem = getUint8ArrayMemory0();

    let offset = 0;

    for (; offset < len; offset++) {
        const code = arg.charCodeAt(offset);
        if (code > 0x7F) break;
        mem[ptr + offset] = code;
    }
    if (offset !== len) {
        if (offset !== 0) {
            arg = arg.slice(offset);
        }
        ptr = realloc(ptr, len, len = offset + arg.length * 3, 1) >>> 0;
        const view = getUint8ArrayMemory0().subarray(ptr + offset, ptr + len);
        const ret = cachedTextEncoder.encodeInto(arg, view);

        offset += ret.written;
        ptr = realloc(ptr, len, offset, 1) >>> 0;
    }

    WASM_VECTOR_LEN = offset;
    return ptr;
}

function takeFromExternrefTable0(idx) {
    const value = wasm.__wbindgen_externrefs.get(idx);
    wasm.__externref_table_dealloc(idx);
    return value;
}

let cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
cachedTextDecoder.decode();
const MAX_SAFARI_DECODE_BYTES = 2146435072;
let numBytesDecoded = 0;
function decodeText(bytes) {
    numBytesDecoded += bytes.length;
    if (numBytesDecoded >= MAX_SAFARI_DECODE_BYTES) {
        cachedTextDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
        cachedTextDecoder.decode();
        numBytesDecoded = bytes.length;
    }
    return cachedTextDecoder.decode(bytes);
}

const cachedTextEncoder = new TextEncoder();

if (!('encodeInto' in cachedTextEncoder)) {
    cachedTextEncoder.encodeInto = function (arg, view) {
        const buf = cachedTextEncoder.encode(arg);
        view.set(buf);
        return {
            read: arg.length,
            written: buf.length
        };
    };
}

let WASM_VECTOR_LEN = 0;

let wasmModule, wasmInstance, wasm;
function __wbg_finalize_init(instance, module) {
    wasmInstance = instance;
    wasm = instance.exports;
    wasmModule = module;
    cachedInt16ArrayMemory0 = null;
    cachedUint16ArrayMemory0 = null;
    cachedUint8ArrayMemory0 = null;
    wasm.__wbindgen_start();
    return wasm;
}

async function __wbg_load(module, imports) {
    if (typeof Response === 'function' && module instanceof Response) {
        if (!module.ok) {
            throw new Error(`failed to fetch Wasm: ${module.status} ${module.statusText} fetching '${module.url}'`);
        }

        if (typeof WebAssembly.instantiateStreaming === 'function') {
            try {
                return await WebAssembly.instantiateStreaming(module, imports);
            } catch (e) {
                const validResponse = expectedResponseType(module.type);

                if (validResponse && module.headers.get('Content-Type') !== 'application/wasm') {
                    console.warn("`WebAssembly.instantiateStreaming` failed because your server does not serve Wasm with `application/wasm` MIME type. Falling back to `WebAssembly.instantiate` which is slower. Original error:\n", e);

                } else { throw e; }
            }
        }

        const bytes = await module.arrayBuffer();
        return await WebAssembly.instantiate(bytes, imports);
    } else {
        const instance = await WebAssembly.instantiate(module, imports);

        if (instance instanceof WebAssembly.Instance) {
            return { instance, module };
        } else {
            return instance;
        }
    }

    function expectedResponseType(type) {
        switch (type) {
            case 'basic': case 'cors': case 'default': return true;
        }
        return false;
    }
}

function initSync(module) {
    if (wasm !== undefined) return wasm;


    if (module !== undefined) {
        if (Object.getPrototypeOf(module) === Object.prototype) {
            ({module} = module)
        } else {
            console.warn('using deprecated parameters for `initSync()`; pass a single object instead')
        }
    }

    const imports = __wbg_get_imports();
    if (!(module instanceof WebAssembly.Module)) {
        module = new WebAssembly.Module(module);
    }
    const instance = new WebAssembly.Instance(module, imports);
    return __wbg_finalize_init(instance, module);
}

let __wbg_init_promise;
async function __wbg_init(module_or_path) {
    if (wasm !== undefined) return wasm;
    if (__wbg_init_promise === undefined) {
        __wbg_init_promise = __wbg_init_once(module_or_path);
        __wbg_init_promise.catch(() => { __wbg_init_promise = undefined; });
    }
    return __wbg_init_promise;
}

async function __wbg_init_once(module_or_path) {

    if (module_or_path !== undefined) {
        if (Object.getPrototypeOf(module_or_path) === Object.prototype) {
            ({module_or_path} = module_or_path)
        } else {
            console.warn('using deprecated parameters for the initialization function; pass a single object instead')
        }
    }

    if (module_or_path === undefined) {
        module_or_path = new URL('myturn_web_bg.wasm', import.meta.url);
    }
    const imports = __wbg_get_imports();

    if (typeof module_or_path === 'string' || (typeof Request === 'function' && module_or_path instanceof Request) || (typeof URL === 'function' && module_or_path instanceof URL)) {
        module_or_path = fetch(module_or_path);
    }

    const { instance, module } = await __wbg_load(await module_or_path, imports);

    return __wbg_finalize_init(instance, module);
}

export { initSync, __wbg_init as default };
