// CURVE key files and the rule for where a coordinator may listen without
// them. A pair is NAME.key (both keys, mode 0600) and NAME.pub (the public
// key, for the other side), each a ZPL certificate as czmq's zcert and
// pyzmq's zmq.auth write them:
//   #   ZeroMQ CURVE **Secret** Certificate
//   metadata
//   curve
//       public-key = "<40 characters of Z85>"
//       secret-key = "<40 characters of Z85>"
// Files of those tools load here, and ours there; so do the top-level
// "public-key = ..." lines imgsweep wrote before.
#ifndef IMGSWEEP_CLI_KEYS_H_
#define IMGSWEEP_CLI_KEYS_H_

#include <filesystem>
#include <set>
#include <string>

#include "protocol/status.h"
#include "protocol/transport.h"

namespace imgsweep {

// Writes `base`.key and `base`.pub; kInvalidInput when either exists.
Status WriteKeyPair(const std::filesystem::path& base);

// kInvalidInput naming the file when it is not a key file of its kind, when
// a secret key file is readable by group or others, or when its public key
// is not the secret key's.
Result<CurveKeyPair> LoadSecretKey(const std::filesystem::path& file);
Result<std::string> LoadPublicKey(const std::filesystem::path& file);
// The public keys of every *.pub file in `dir`, and of every *.key file
// that holds only a public key (pyzmq's public certificates; imgsweep's own
// secret .key files are passed over); kInvalidInput when none.
Result<std::set<std::string>> LoadAllowedKeys(const std::filesystem::path& dir);

// CURVE for a client of the coordinator (a worker, `status --connect`) when
// both key files are given; plain text when neither is; kInvalidInput when
// only one is.
Result<ClientSecurity> ClientSecurityOf(const std::filesystem::path& curve_secret,
                                        const std::filesystem::path& coordinator_key);

// True for endpoints only this host can reach: tcp on 127.0.0.0/8,
// localhost or [::1], and ipc:// or inproc://.
bool IsLoopbackEndpoint(const std::string& endpoint);

}  // namespace imgsweep

#endif  // IMGSWEEP_CLI_KEYS_H_
