"""Series/study assembly: when received instances form a complete series or study."""
