"""The App Store signing chain the tests sign with: the development one, made per test."""

from simulator.keys import INTERMEDIATE_OID, LEAF_OID, SigningAuthority

__all__ = ["INTERMEDIATE_OID", "LEAF_OID", "SigningAuthority"]
