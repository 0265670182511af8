"""The SSH gateway: any OpenSSH client reaches a Rexec terminal (docs/ssh.md)."""
