// A DPoP client written only with panva's oauth4webapi (and jose to mint the access token an
// authorization server would issue), used by tests/e2e/test_nonce_client.py against the
// filter in a real Envoy:
//
//   1. RFC 9728 discovery of the protected resource (resourceDiscoveryRequest +
//      processResourceDiscoveryResponse), which checks that the metadata names `--resource`;
//   2. a fresh ES256 key in a DPoP handle (oauth.DPoP), an HS256 access token bound to its
//      thumbprint (cnf.jkt);
//   3. `--count` protectedResourceRequest calls, one every `--interval-ms`, each retried once
//      when the server answers `use_dpop_nonce` (isDPoPNonceError), as oauth4webapi documents.
//      The handle remembers the last DPoP-Nonce it saw (from 401s and from 200s alike).
//
// Prints one JSON object with what happened; exits 0 unless the client itself broke (the test
// judges the counts).
//
//   node nonce_client.mjs --resource http://127.0.0.1:PORT/api --url http://127.0.0.1:PORT/api/items \
//        --secret HS256-SECRET [--count 50] [--interval-ms 300]
import * as oauth from 'oauth4webapi'
import * as jose from 'jose'

function args(argv) {
  const out = { count: '50', 'interval-ms': '300' }
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`)
    out[argv[i].slice(2)] = argv[i + 1]
  }
  for (const k of ['resource', 'url', 'secret']) if (!out[k]) throw new Error(`--${k} is required`)
  return out
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)))

const opt = args(process.argv.slice(2))
const insecure = { [oauth.allowInsecureRequests]: true } // the test Envoy speaks plain http
const resource = new URL(opt.resource)
const url = new URL(opt.url)
const count = Number(opt.count)
const intervalMs = Number(opt['interval-ms'])

// 1. Discovery (RFC 9728 §3): GET /.well-known/oauth-protected-resource{resource path}
const discovery = await oauth.resourceDiscoveryRequest(resource, insecure)
const discoveryUrl = discovery.url
const metadata = await oauth.processResourceDiscoveryResponse(resource, discovery)
const algs = metadata.dpop_signing_alg_values_supported ?? []
if (!algs.includes('ES256')) {
  console.log(JSON.stringify({ fatal: 'ES256 not in dpop_signing_alg_values_supported', metadata }))
  process.exit(2)
}

// 2. The key, the DPoP handle, and a token bound to the key (what an AS would issue).
const keyPair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
const noncesSent = [] // the `nonce` claim of every proof the handle signs, in order (null: none)
const dpop = oauth.DPoP({}, keyPair, {
  [oauth.modifyAssertion]: (_header, payload) => { noncesSent.push(payload.nonce ?? null) },
})
const jkt = await dpop.calculateThumbprint()
const accessToken = await new jose.SignJWT({ sub: 'node-client', cnf: { jkt } })
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setIssuedAt()
  .setExpirationTime('10m')
  .sign(new TextEncoder().encode(opt.secret))

// 3. The calls.
const out = {
  discovery_url: discoveryUrl,
  metadata,
  jkt,
  calls: count,
  successes: 0,
  failures: [], // {call, status, www_authenticate, body}
  nonce_errors: [], // {call, www_authenticate, dpop_nonce, cache_control}
  http_requests: 0,
  nonce_handouts: 0, // 200 responses carrying DPoP-Nonce
  handouts_without_no_store: 0,
  handed_out: [], // distinct DPoP-Nonce values seen on 200s, in order
  nonces_sent: noncesSent,
  echo_jkt_mismatch: 0,
  started_ms: Date.now(),
}

async function once(call) {
  out.http_requests++
  const response = await oauth.protectedResourceRequest(accessToken, 'GET', url, new Headers(), null, { DPoP: dpop, ...insecure })
  const text = await response.text()
  if (response.status !== 200) {
    out.failures.push({ call, status: response.status, www_authenticate: response.headers.get('www-authenticate'), body: text })
    return
  }
  out.successes++
  const nonce = response.headers.get('dpop-nonce')
  if (nonce) {
    out.nonce_handouts++
    if (out.handed_out.at(-1) !== nonce) out.handed_out.push(nonce)
    if (!/(^|,)\s*no-store\s*(,|$)/.test(response.headers.get('cache-control') ?? '')) out.handouts_without_no_store++
  }
  try {
    if (JSON.parse(text)['x-dpop-jkt'] !== jkt) out.echo_jkt_mismatch++
  } catch {
    out.echo_jkt_mismatch++
  }
}

const t0 = Date.now()
for (let call = 0; call < count; call++) {
  await sleep(t0 + call * intervalMs - Date.now())
  try {
    await once(call)
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) {
      out.failures.push({ call, status: err.status ?? null, error: String(err), www_authenticate: err.response?.headers.get('www-authenticate') ?? null })
      continue
    }
    out.nonce_errors.push({
      call,
      status: err.status,
      www_authenticate: err.response.headers.get('www-authenticate'),
      dpop_nonce: err.response.headers.get('dpop-nonce'),
      cache_control: err.response.headers.get('cache-control'),
    })
    // The handle cached the DPoP-Nonce of the 401; retry once, as oauth4webapi documents.
    try {
      await once(call)
    } catch (err2) {
      out.failures.push({ call, retry: true, status: err2.status ?? null, error: String(err2), www_authenticate: err2.response?.headers.get('www-authenticate') ?? null })
    }
  }
}
out.elapsed_ms = Date.now() - t0
console.log(JSON.stringify(out))
