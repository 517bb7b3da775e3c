# -*- coding: utf-8 -*-
# Copyright: IronCache maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of the ironcache role: print a real Ansible warning (not a debug message)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


class ActionModule(ActionBase):
    """Show `msg` as a [WARNING] line and in the task result; never changes anything."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("msg",))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        msg = " ".join(str(self._task.args.get("msg", "")).split())
        host = (task_vars or {}).get("inventory_hostname", "")
        display.warning("%s: %s" % (host, msg) if host else msg)
        result.update(changed=False, msg=msg)
        return result
