// Replaced by TCPLinkTests.swift.
