"""affect: facial affect analysis in-the-wild (Kollias & Zafeiriou)."""
