"""Importer artifact names exactly as the runtime's `inferArtifactName` gives them (issue #14, item 3):
Go's `path.Base(url.Parse(uri).Path)` with a scheme, else `path.Base` of the URI without a trailing `/`.
Expected values are written out from Go's rules; the migrator's and verify's implementations (written
separately) must both give them."""

from __future__ import annotations

import pytest

from mlmd2kfp.mappers.artifacts import infer_artifact_name as migrator_name
from mlmd2kfp.verify.expect import infer_artifact_name as verify_name

CASES = [
    ("gs://b/dir/my%20train.csv", "my train.csv"),  # Go's Path is percent-decoded
    ("gs://b/%E2%82%AC.csv", "€.csv"),
    ("gs://b/a%2Fb", "b"),                           # an escaped slash is a slash once decoded
    ("s3://bucket-only", "."),                       # empty path
    ("gs://b/d/", "d"),                              # trailing slash
    ("gs://b/d", "d"),
    ("minio://x/y.csv?v=1", "y.csv"),                # the query is not part of the path
    ("https://minio.local/bucket/f.txt#frag", "f.txt"),
    ("gs:///x/y", "y"),                              # empty host
    ("gs://user@host/p/q", "q"),
    ("gs://[::1]:80/x", "x"),
    ("C:/path/f.txt", "f.txt"),                      # a one-letter scheme
    ("mailto:x", "."),                               # opaque: no path
    ("s3:bucket/key", "."),
    ("bucket/path/file.txt", "file.txt"),            # no scheme
    ("bucket/path/", "path"),
    ("/", "."),
    ("file.txt", "file.txt"),
    ("1abc://x/y", "y"),                             # a scheme cannot start with a digit
    (":nope/x", "x"),                                # Go: missing protocol scheme (refused)
    ("gs://b/bad%zzescape", "bad%zzescape"),         # Go: invalid URL escape (refused)
    ("gs://b/x#bad%zz", "x#bad%zz"),                 # refused in the fragment
    ("gs://b:ab/x", "x"),                            # Go: invalid port (refused)
    ("", ""),
]


@pytest.mark.parametrize("name", [migrator_name, verify_name], ids=["migrator", "verify"])
@pytest.mark.parametrize("uri, expected", CASES)
def test_importer_names_follow_go(name, uri, expected):
    assert name(uri) == expected
