"""Bulk exports: the only bulk read path, under two-person approval, size caps, encryption to the
recipient's key, per-export watermark rows and single-use signed download links."""
