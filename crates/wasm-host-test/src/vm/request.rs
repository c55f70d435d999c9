//! One HTTP request at a time: [`Request`] (what the host hands over), [`Outcome`] and
//! [`Exchange`] (what became of it after a guest callback), and the [`Vm`] methods that open a
//! stream, deliver callout responses and finish it as Envoy does.

use super::{Trap, Vm};
use crate::abi::{self, action, Pairs};
use crate::host::{CallRecord, CalloutResponse, HeaderMap, LocalResponse, Stream};

/// One request as the host hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub headers: Pairs,
    /// When set, `proxy_get_header_map_pairs` returns these bytes verbatim (malformed maps).
    pub raw_headers: Option<Vec<u8>>,
    /// `end_of_stream` of `proxy_on_request_headers` (true: no body).
    pub end_of_stream: bool,
}

impl Request {
    pub fn new<K: AsRef<[u8]>, V: AsRef<[u8]>>(headers: &[(K, V)]) -> Request {
        Request {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_ref().to_vec(), v.as_ref().to_vec()))
                .collect(),
            raw_headers: None,
            end_of_stream: true,
        }
    }
}

/// What the host does with the request after a guest callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request goes upstream with these headers.
    Upstream(Pairs),
    /// The guest answered itself.
    LocalReply(LocalResponse),
    /// Paused until these callouts answer.
    Pending(Vec<u32>),
    /// The guest reset the stream (`proxy_close_stream`) without a reply.
    Closed,
    /// Paused with nothing outstanding and no reply: in Envoy the request hangs until the
    /// client or a timeout gives up.
    Stalled,
}

/// The result of one guest callback on a stream.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub context_id: u32,
    /// The callback's return (`proxy_on_request_headers`: 0 continue, 1 pause).
    pub action: Option<i64>,
    pub outcome: Outcome,
    /// Host calls the guest made during the callback.
    pub calls: Vec<CallRecord>,
    /// Every `proxy_set_property` (path bytes, value) on the stream so far.
    pub properties_set: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Exchange {
    pub fn local_reply(&self) -> Option<&LocalResponse> {
        match &self.outcome {
            Outcome::LocalReply(r) => Some(r),
            _ => None,
        }
    }
    /// The last value the guest set for property `path` (one segment, as Envoy filter state
    /// `wasm.<path>`).
    pub fn property(&self, path: &str) -> Option<&[u8]> {
        self.properties_set
            .iter()
            .rev()
            .find(|(k, _)| k.as_slice() == path.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

impl Vm {
    fn new_stream(&mut self, req: &Request) -> u32 {
        let ctx = self.next_context;
        self.next_context += 1;
        let stream = Stream {
            request_headers: HeaderMap {
                pairs: req.headers.clone(),
                raw: req.raw_headers.clone(),
            },
            ..Stream::default()
        };
        self.host_mut().streams.insert(ctx, stream);
        ctx
    }

    fn properties_set(&self, ctx: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.host()
            .streams
            .get(&ctx)
            .map(|s| s.properties_set.clone())
            .unwrap_or_default()
    }

    fn outcome(&self, ctx: u32, action: Option<i64>) -> Outcome {
        let Some(s) = self.host().streams.get(&ctx) else {
            return Outcome::Stalled;
        };
        if let Some(r) = &s.local_response {
            Outcome::LocalReply(r.clone())
        } else if action == Some(i64::from(action::CONTINUE))
            || s.continued.contains(&abi::stream_type::HTTP_REQUEST)
        {
            Outcome::Upstream(s.request_headers.pairs.clone())
        } else if !s.closed.is_empty() {
            Outcome::Closed
        } else if !s.pending_calls.is_empty() {
            Outcome::Pending(s.pending_calls.clone())
        } else {
            Outcome::Stalled
        }
    }

    /// A new HTTP context and `proxy_on_request_headers`. The stream stays open: answer its
    /// callouts with [`Vm::http_call_response`], end it with [`Vm::finish`].
    pub fn request_headers(&mut self, req: &Request) -> Result<Exchange, Trap> {
        let root = self.root;
        self.request_headers_on(root, req)
    }

    /// [`Vm::request_headers`] for the plugin of root context `root` ([`Vm::add_root`]).
    pub fn request_headers_on(&mut self, root: u32, req: &Request) -> Result<Exchange, Trap> {
        let ctx = self.new_stream(req);
        self.stream_root.insert(ctx, root);
        let calls_mark = self.host().calls.len();
        self.call_in(ctx, "proxy_on_context_create", &[ctx as i32, root as i32])?;
        let n = req.headers.len() as i32;
        let action = self.call_in(
            ctx,
            "proxy_on_request_headers",
            &[ctx as i32, n, i32::from(req.end_of_stream)],
        )?;
        Ok(Exchange {
            context_id: ctx,
            action,
            outcome: self.outcome(ctx, action),
            properties_set: self.properties_set(ctx),
            calls: self
                .host()
                .calls
                .get(calls_mark..)
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// The response to callout `token` of stream `ctx`, delivered as Envoy does: to the root
    /// context id (the call was made on the root context), the SDK switching with
    /// `proxy_set_effective_context`.
    pub fn http_call_response(
        &mut self,
        ctx: u32,
        token: u32,
        headers: Pairs,
        body: Vec<u8>,
    ) -> Result<Exchange, Trap> {
        let calls_mark = self.host().calls.len();
        let (nh, nb) = (headers.len() as i32, body.len() as i32);
        {
            let st = self.host_mut();
            if let Some(s) = st.streams.get_mut(&ctx) {
                s.pending_calls.retain(|t| *t != token);
            }
            st.callout_response = Some(CalloutResponse {
                headers,
                body,
                trailers: Vec::new(),
            });
        }
        let root = self.stream_root.get(&ctx).copied().unwrap_or(self.root);
        let r = self.call_in(
            root,
            "proxy_on_http_call_response",
            &[root as i32, token as i32, nh, nb, 0],
        );
        self.host_mut().callout_response = None;
        r?;
        Ok(Exchange {
            context_id: ctx,
            action: None,
            outcome: self.outcome(ctx, None),
            properties_set: self.properties_set(ctx),
            calls: self
                .host()
                .calls
                .get(calls_mark..)
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// The upstream's response headers for stream `ctx` (still open: [`Vm::request_headers`]),
    /// delivered with `proxy_on_response_headers`; returns the callback's action and the
    /// headers as the guest left them.
    pub fn response_headers(
        &mut self,
        ctx: u32,
        headers: Pairs,
    ) -> Result<(Option<i64>, Pairs), Trap> {
        let n = headers.len() as i32;
        if let Some(s) = self.host_mut().streams.get_mut(&ctx) {
            s.response_headers = HeaderMap::from_pairs(headers);
        }
        let action = self.call_in(ctx, "proxy_on_response_headers", &[ctx as i32, n, 0])?;
        let after = self
            .host()
            .streams
            .get(&ctx)
            .map(|s| s.response_headers.pairs.clone())
            .unwrap_or_default();
        Ok((action, after))
    }

    /// What has become of stream `ctx` so far (after callbacks on other contexts finished it).
    pub fn outcome_of(&self, ctx: u32) -> Outcome {
        self.outcome(ctx, None)
    }

    /// End of stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(&mut self, ctx: u32) -> Result<(), Trap> {
        self.call_in(ctx, "proxy_on_done", &[ctx as i32])?;
        self.call_in(ctx, "proxy_on_log", &[ctx as i32])?;
        self.call_in(ctx, "proxy_on_delete", &[ctx as i32])?;
        self.host_mut().streams.remove(&ctx);
        self.stream_root.remove(&ctx);
        Ok(())
    }

    /// One request start to end: headers, then (unless it waits on a callout) done/log/delete.
    pub fn run(&mut self, req: &Request) -> Result<Exchange, Trap> {
        let root = self.root;
        self.run_on(root, req)
    }

    /// [`Vm::run`] for the plugin of root context `root`.
    pub fn run_on(&mut self, root: u32, req: &Request) -> Result<Exchange, Trap> {
        let ex = self.request_headers_on(root, req)?;
        if !matches!(ex.outcome, Outcome::Pending(_)) {
            self.finish(ex.context_id)?;
        }
        Ok(ex)
    }
}
