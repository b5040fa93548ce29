"""Plumbing shared by every stage: where files live (paths), file checksums (digest), and
several processes sharing one job (distributed)."""
