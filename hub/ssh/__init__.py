"""The SSH gateway: any OpenSSH client reaches a Rexec terminal (docs/ssh.md)."""

import warnings

# asyncssh still names DSA key types, and cryptography >= 48 warns once per mention at
# import: five lines of noise on every command that loads the gateway. We never offer DSA
# (hub/ssh/gateway.py lists the algorithms), so the warning tells a person nothing.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")
