// Writes the fuzzer's seed corpus: one valid frame of every message kind, so
// the fuzzer starts from the shapes peers really send. A test checks that the
// committed seeds (tests/fuzz/seeds) are what this writes today.
// Usage: write_seeds DIR
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "protocol/messages.h"

int main(int argc, char** argv) {
  using namespace imgsweep;
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_seeds DIR\n");
    return 2;
  }
  const std::string sha(64, 'a');
  CellSpec spec{"map-json/7.2.0/qcow2-basic", "7.2.0",
                {"map", "--output=json", "$TESTDATA_ROOT/images/qcow2/basic.qcow2"},
                "images/qcow2/basic.qcow2", sha, 30'000, 1, std::string(64, 'c')};
  const std::string sweep_id = "0123456789abcdef0123456789abcdef";
  CellResult result;
  result.key = spec.key;
  result.attempt = 1;
  result.lease_id = (std::uint64_t{1} << 32) | 7;
  result.sweep_id = sweep_id;
  result.inputs = spec.inputs;
  result.outcome = Outcome::kExited;
  result.stdout_text = "[{ \"start\": 0, \"length\": 65536, \"depth\": 0, \"data\": true}]\n";
  result.duration_us = 4200;
  result.started_unix_ms = 1'790'000'000'000;
  CellResult signaled = result;
  signaled.outcome = Outcome::kSignaled;
  signaled.signal = 11;
  CellResult infra = result;
  infra.outcome = Outcome::kInfraFailure;
  infra.failure = "image images/qcow2/basic.qcow2: this host's copy differs";
  infra.failure_kind = FailureKind::kImageMismatch;
  const std::pair<const char*, Message> seeds[] = {
      {"hello",
       Hello{"w1", "host-1", 2, {{"7.2.0", sha, "qemu-img version 7.2.22"}}, "5f3a9c01d2e4b687",
             {{"9.0.0", "--version timed out after 30 s"}},
             {{"images/raw/sparse.raw", "sparse:0123456789abcdef"}},
             R"({"table_format": 1, "commands": [{"name": "map", "layout": "by-format", )"
             R"("output_types": [{"name": "map-json", "argv": "{binary} map --output=json {image}"}]}]})"}},
      {"welcome", Welcome{sweep_id, 1000, 3}},
      {"refused", Refused{"say hello first"}},
      {"credit", Credit{4}},
      {"assignment", Assignment{result.lease_id, 1'790'000'030'000, {spec}}},
      {"result-exited", result},
      {"result-signaled", signaled},
      {"result-infra", infra},
      {"results", Results{{result, signaled, infra}}},
      {"ack", Ack{{spec.key}}},
      {"heartbeat", Heartbeat{}},
      {"shutdown", Shutdown{"the sweep is complete"}},
      {"hello-first", HelloFirst{}},
      {"status-request", StatusRequest{}},
      {"status-reply", StatusReply{R"({"cells": 440, "workers": []})"}},
  };
  for (const auto& [name, message] : seeds) {
    std::ofstream out(std::string(argv[1]) + "/" + name, std::ios::binary);
    out << Encode(message);
    if (!out) {
      std::fprintf(stderr, "write_seeds: cannot write %s/%s\n", argv[1], name);
      return 1;
    }
  }
  return 0;
}
