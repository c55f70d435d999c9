// A real OAuth 2.0 authorization server for tests/e2e/test_introspection.py: panva's
// oidc-provider (npm, pinned in package-lock.json; `make oidc-deps`), in memory, plain http on
// 127.0.0.1 (issuer http://127.0.0.1:PORT).
//
//   - client `--client-id`/`--client-secret`: client_credentials, client_secret_basic;
//   - client `--rs-id`/`--rs-secret`: the resource server (dpop-guard) calling introspection,
//     client_secret_basic, no grants;
//   - DPoP (RFC 9449) on, no nonce: a token request with a DPoP proof gets a token bound to the
//     proof key (`cnf.jkt` in the JWT, or in the introspection answer of an opaque token);
//   - introspection (RFC 7662, /token/introspection) and revocation (RFC 7009,
//     /token/revocation) on;
//   - resource indicators (RFC 8707), two resources: `--jwt-resource` gets ES256 JWT access
//     tokens signed with the provider's key, `--opaque-resource` gets opaque tokens.
//
// The signing key is a fresh P-256 key on every start, with kid `--kid`: restarting with
// another kid is a key rotation (GET /jwks shows only the new key).
//
// Prints one JSON line {"ready": true, "issuer", "jwks_uri", "introspection_endpoint", ...,
// "kid"} on stdout once it listens; logs each request on stderr.
//
//   node as.mjs --port 4000 --kid k1 [--client-id app --client-secret ... --rs-id rs --rs-secret ...]
import { generateKeyPairSync } from 'node:crypto'
import Provider from 'oidc-provider'

function args(argv) {
  const out = {
    'client-id': 'dpop-app',
    'client-secret': 'dpop-app-secret-0123456789abcdef',
    'rs-id': 'dpop-guard-rs',
    'rs-secret': 'dpop-guard-rs-secret-0123456789ab',
    'jwt-resource': 'https://api.example/jwt',
    'opaque-resource': 'https://api.example/opaque',
    kid: 'as-key-1',
    ttl: '600',
  }
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`)
    out[argv[i].slice(2)] = argv[i + 1]
  }
  if (!out.port) throw new Error('--port is required')
  return out
}

const opt = args(process.argv.slice(2))
const issuer = `http://127.0.0.1:${opt.port}`
const ttl = Number(opt.ttl)

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: opt.kid, alg: 'ES256', use: 'sig' }

const resources = {
  [opt['jwt-resource']]: {
    scope: 'api:read',
    audience: opt['jwt-resource'],
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
  [opt['opaque-resource']]: {
    scope: 'api:read',
    audience: opt['opaque-resource'],
    accessTokenTTL: ttl,
    accessTokenFormat: 'opaque',
  },
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: opt['client-id'],
      client_secret: opt['client-secret'],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api:read',
    },
    {
      client_id: opt['rs-id'],
      client_secret: opt['rs-secret'],
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'api:read'],
  // The only key is P-256: clients must not default to RS256 ID tokens (none are issued here).
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  enabledJWA: {
    idTokenSigningAlgValues: ['ES256'],
    dPoPSigningAlgValues: ['ES256', 'EdDSA', 'RS256'],
  },
  ttl: { ClientCredentials: ttl, AccessToken: ttl },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    introspection: {
      enabled: true,
      // Only the resource server (or the token's own client) may introspect.
      allowedPolicy: async (_ctx, client, token) =>
        client.clientId === opt['rs-id'] || client.clientId === token.clientId,
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => opt['opaque-resource'],
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const info = resources[resourceIndicator]
        if (!info) throw new Provider.errors.InvalidTarget(`unknown resource ${resourceIndicator}`)
        return info
      },
    },
  },
})

provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`))

provider.use(async (ctx, next) => {
  await next()
  process.stderr.write(`${new Date().toISOString()} ${ctx.method} ${ctx.path} ${ctx.status}\n`)
})

const server = provider.listen(Number(opt.port), '127.0.0.1', () => {
  console.log(JSON.stringify({
    ready: true,
    issuer,
    kid: opt.kid,
    jwks_uri: `${issuer}/jwks`,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    revocation_endpoint: `${issuer}/token/revocation`,
    public_jwk: { kty: signingKey.kty, crv: signingKey.crv, x: signingKey.x, y: signingKey.y, kid: opt.kid, alg: 'ES256', use: 'sig' },
  }))
})

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close()
    process.exit(0)
  })
}
