"""Trust: official-use signature PKI (chữ ký số chuyên dùng công vụ), key stores and the
signed federation registry."""
