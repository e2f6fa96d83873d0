"""Cognito's USER_SRP_AUTH sign-in, the only password flow the dashboard's app client
allows (template.yaml, DashboardClient): the password never leaves this process; the
client proves it knows it (SRP-6a over Cognito's 3072-bit group, RFC 5054)."""
import base64
import datetime
import hashlib
import hmac
import secrets

N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
G = 2


def _pad(n):
    """Big-endian bytes with a leading zero byte when the high bit is set."""
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _hash(*parts):
    return int.from_bytes(hashlib.sha256(b"".join(parts)).digest(), "big")


K = _hash(_pad(N), _pad(G))


def sign_in(idp, pool_id, client_id, username, password):
    """The tokens (IdToken, AccessToken, ...) of a USER_SRP_AUTH sign-in."""
    a = secrets.randbelow(N - 2) + 1
    big_a = pow(G, a, N)
    challenge = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_SRP_AUTH",
        AuthParameters={"USERNAME": username, "SRP_A": format(big_a, "x")},
    )
    assert challenge["ChallengeName"] == "PASSWORD_VERIFIER", challenge
    params = challenge["ChallengeParameters"]
    user_id = params["USER_ID_FOR_SRP"]
    big_b = int(params["SRP_B"], 16)
    salt = int(params["SALT"], 16)
    u = _hash(_pad(big_a), _pad(big_b))
    pool_name = pool_id.split("_", 1)[1]
    inner = hashlib.sha256(f"{pool_name}{user_id}:{password}".encode()).digest()
    x = _hash(_pad(salt), inner)
    s = pow((big_b - K * pow(G, x, N)) % N, a + u * x, N)
    # HKDF-SHA256 of S with u as salt, 16 bytes.
    prk = hmac.new(_pad(u), _pad(s), hashlib.sha256).digest()
    key = hmac.new(prk, b"Caldera Derived Key\x01", hashlib.sha256).digest()[:16]
    now = datetime.datetime.now(datetime.timezone.utc)
    timestamp = f"{now:%a %b} {now.day} {now:%H:%M:%S} UTC {now.year}"
    block = params["SECRET_BLOCK"]
    message = f"{pool_name}{user_id}".encode() + base64.b64decode(block) + timestamp.encode()
    signature = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    answer = idp.respond_to_auth_challenge(
        ClientId=client_id,
        ChallengeName="PASSWORD_VERIFIER",
        ChallengeResponses={
            "USERNAME": user_id,
            "TIMESTAMP": timestamp,
            "PASSWORD_CLAIM_SECRET_BLOCK": block,
            "PASSWORD_CLAIM_SIGNATURE": signature,
        },
    )
    return answer["AuthenticationResult"]
