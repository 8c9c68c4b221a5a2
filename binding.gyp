{
  "targets": [
    {
      "target_name": "reconfig_inject",
      "sources": ["src/net/native/inject.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-lpcap"]
    }
  ]
}
