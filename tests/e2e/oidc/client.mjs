// A DPoP client written only with panva's oauth4webapi, for tests/e2e/test_introspection.py,
// against the authorization server of as.mjs (plain http on 127.0.0.1).
//
//   token:  discovery of `--issuer`, a fresh extractable ES256 key in a DPoP handle, then a
//           client_credentials grant (client_secret_basic) with `resource=--resource` and the
//           handle's proof (retried once on use_dpop_nonce). With `--call URL`, then also GETs
//           URL with protectedResourceRequest (Authorization: DPoP + a fresh proof of the same
//           key). Prints one JSON line: access_token, token_type, expires_in, scope, jkt (the
//           key's RFC 7638 thumbprint), private_jwk (so later proofs can be signed with the
//           client's own key: `dpop proof --key`), and call: {status, body} when asked.
//   revoke: RFC 7009 revocation of `--token` by the client. Prints {"revoked": true}.
//
//   node client.mjs token --issuer http://127.0.0.1:PORT --resource https://api.example/opaque \
//        --client-id ID --client-secret SECRET [--call URL]
//   node client.mjs revoke --issuer ... --client-id ID --client-secret SECRET --token TOKEN
import * as oauth from 'oauth4webapi'

function args(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`)
    out[argv[i].slice(2)] = argv[i + 1]
  }
  for (const k of ['issuer', 'client-id', 'client-secret']) if (!out[k]) throw new Error(`--${k} is required`)
  return out
}

const [action, ...rest] = process.argv.slice(2)
const opt = args(rest)
const insecure = { [oauth.allowInsecureRequests]: true } // the test AS speaks plain http

const issuer = new URL(opt.issuer)
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }))
const client = { client_id: opt['client-id'] }
const auth = oauth.ClientSecretBasic(opt['client-secret'])

async function withNonceRetry(fn) {
  try {
    return await fn()
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) return fn() // the handle now knows the server's nonce
    throw err
  }
}

if (action === 'token') {
  if (!opt.resource) throw new Error('--resource is required')
  const keyPair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
  const dpop = oauth.DPoP(client, keyPair)
  const tokens = await withNonceRetry(async () => {
    const res = await oauth.clientCredentialsGrantRequest(as, client, auth, { resource: opt.resource, scope: 'api:read' }, { DPoP: dpop, ...insecure })
    return oauth.processClientCredentialsResponse(as, client, res)
  })
  const { kty, crv, x, y, d } = await crypto.subtle.exportKey('jwk', keyPair.privateKey)
  const out = {
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    jkt: await dpop.calculateThumbprint(),
    private_jwk: { kty, crv, x, y, d, alg: 'ES256' },
  }
  if (opt.call) {
    const res = await withNonceRetry(async () => {
      const r = await oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(opt.call), new Headers(), null, { DPoP: dpop, ...insecure })
      return r
    })
    out.call = { status: res.status, body: await res.text() }
  }
  console.log(JSON.stringify(out))
} else if (action === 'revoke') {
  if (!opt.token) throw new Error('--token is required')
  const res = await oauth.revocationRequest(as, client, auth, opt.token, insecure)
  await oauth.processRevocationResponse(res)
  console.log(JSON.stringify({ revoked: true }))
} else {
  throw new Error(`unknown action ${action} (token | revoke)`)
}
