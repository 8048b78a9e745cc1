"""Berg's Feast repo: what `feast apply` registers.

The objects are built in the core library (berg.features.definitions) from one
table of feature names and windows (berg.features.schema) that the streaming
aggregator and the training pipeline read too. Offline sources live under
$BERG_FEAST_OFFLINE_ROOT, else $BERG_STATE_DIR/feast/offline.

Feast's CLI imports this file and expands feature_store.yaml from the environment,
so this file, an application edge like Feast's CLI, reads the same environment.
"""

import os

from berg.features.definitions import build_definitions
from berg.features.store_config import ensure_state_folder, offline_root_from

ensure_state_folder(os.environ)
_definitions = build_definitions(offline_root_from(os.environ))

user = _definitions.user
merchant = _definitions.merchant
user_transaction_aggregates_source = _definitions.user_source
user_transaction_aggregates_push = _definitions.user_push
merchant_aggregates_source = _definitions.merchant_source
user_transaction_aggregates = _definitions.user_view
merchant_aggregates = _definitions.merchant_view
transaction_request = _definitions.request
transaction_context = _definitions.context_view
fraud_model_v1 = _definitions.service
