"""A scanning agent written like seed 000's `AutonomousScanningAgent`, against vigil's /socket.io/.

Usage: sio_agent.py URL TOKEN

What differs from the seed, and why:
- `connect(url, auth={'token': token})`: vigil authenticates every socket (the seed had no auth);
- `ScanType(data['type'])` instead of `ScanType[data['type']]`: the seed looked the enum up by
  member name (`PORT_SCAN`) while its own server sends the value (`port_scan`), as vigil does;
- threats are matched field by field, not over `json.dumps(findings)` (seed error 8);
- for the test it stops after its first result is acknowledged (the `ack` event), prints one JSON
  line {"registration": ..., "task": ..., "ack": ...} and exits 0; 1 on failure or after 30 s.
"""

import asyncio
import json
import logging
import re
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Dict, List

import socketio


@dataclass
class ThreatSignature:
    id: str
    name: str
    severity: str
    pattern: str
    remediation: str


THREAT_DATABASE = [
    ThreatSignature(
        id='default_credentials',
        name='Default Credentials Detected',
        severity='critical',
        pattern=r'admin:admin|root:root|guest:guest',
        remediation='Change all default credentials',
    ),
]


class ScanType(Enum):
    PORT_SCAN = "port_scan"
    SSL_CHECK = "ssl_check"
    VULNERABILITY_SCAN = "vuln_scan"
    CREDENTIAL_CHECK = "credential_check"
    PATCH_AUDIT = "patch_audit"


@dataclass
class ScanTask:
    id: str
    type: ScanType
    target: str
    ports: List[int] = None
    parameters: Dict[str, Any] = None
    priority: int = 5
    retries: int = 3


@dataclass
class ScanResult:
    scan_id: str
    agent_id: str
    target: str
    scan_type: str
    status: str
    findings: List[Dict[str, Any]]
    threats_detected: List[Dict[str, Any]]
    duration_seconds: float
    timestamp: str

    def to_dict(self):
        return asdict(self)


class AutonomousScanningAgent:
    def __init__(self, agent_id: str, server_url: str, token: str):
        self.agent_id = agent_id
        self.server_url = server_url
        self.token = token
        self.logger = logging.getLogger(f"Agent-{agent_id}")
        self.sio = socketio.AsyncClient(reconnection=False)
        self.connected = False
        self.current_task = None
        self.task_queue = asyncio.Queue()
        self.agent_stats = {'scans_completed': 0, 'threats_found': 0, 'uptime': time.time()}
        self.report = {}
        self.done = asyncio.Event()
        self._setup_handlers()

    def _setup_handlers(self):
        @self.sio.on('connect')
        async def on_connect():
            self.connected = True
            self.logger.info("Connected to server")
            await self._register_with_server()

        @self.sio.on('disconnect')
        async def on_disconnect(*_reason):
            self.connected = False
            self.logger.warning("Disconnected from server")

        @self.sio.on('registration_ack')
        async def on_registration_ack(data):
            self.report['registration'] = data

        @self.sio.on('assign_task')
        async def on_assign_task(data):
            self.report['task'] = data
            task = ScanTask(
                id=data['id'],
                type=ScanType(data['type']),
                target=data['target'],
                ports=data.get('ports'),
                parameters=data.get('parameters', {}),
                priority=data.get('priority', 5),
                retries=data.get('retries', 3),
            )
            await self.task_queue.put(task)

        @self.sio.on('command')
        async def on_command(data):
            if data.get('command') == 'health_check':
                await self._send_health_status()

        @self.sio.on('ack')
        async def on_ack(data):
            if data.get('of') == 'scan_result':
                self.report['ack'] = data
                self.done.set()

        @self.sio.on('error')
        async def on_error(data):
            self.report.setdefault('errors', []).append(data)
            self.logger.error("server error: %s", data)

    async def _register_with_server(self):
        await self.sio.emit('register_agent', {
            'agent_id': self.agent_id,
            'type': 'autonomous_scanner',
            'capabilities': ['port_scan', 'ssl_check', 'vuln_scan', 'credential_check'],
            'max_concurrent': 5,
        })

    async def _send_health_status(self):
        await self.sio.emit('heartbeat', {
            'agent_id': self.agent_id,
            'status': 'processing' if self.current_task else 'ready',
            'current_task': self.current_task.id if self.current_task else None,
            'stats': self.agent_stats,
            'queue_size': self.task_queue.qsize(),
            'timestamp': datetime.now().isoformat(),
        })

    async def _heartbeat_loop(self):
        while self.connected:
            await self._send_health_status()
            await asyncio.sleep(30)

    async def _task_processor_loop(self):
        while True:
            task = await self.task_queue.get()
            await self._execute_scan(task)

    async def _execute_scan(self, task: ScanTask) -> ScanResult:
        self.current_task = task
        start_time = time.time()
        findings, threats = [], []
        try:
            if task.type == ScanType.PORT_SCAN:
                findings = await self._port_scan(task.target, task.ports)
            threats = self._detect_threats(findings)
            status = 'success'
        except Exception as e:
            status = 'failed'
            findings = [{'error': str(e)}]
        result = ScanResult(
            scan_id=task.id,
            agent_id=self.agent_id,
            target=task.target,
            scan_type=task.type.value,
            status=status,
            findings=findings,
            threats_detected=threats,
            duration_seconds=time.time() - start_time,
            timestamp=datetime.now().isoformat(),
        )
        await self.sio.emit('scan_result', result.to_dict())
        self.agent_stats['scans_completed'] += 1
        self.current_task = None
        return result

    async def _port_scan(self, target: str, ports: List[int]) -> List[Dict]:
        findings = []
        for port in ports:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(target, port), timeout=2.0)
                writer.close()
                await writer.wait_closed()
                findings.append({'type': 'open_port', 'port': port, 'status': 'open', 'risk': 'medium'})
            except (asyncio.TimeoutError, OSError):
                findings.append({'type': 'port_status', 'port': port, 'status': 'closed'})
        return findings

    def _detect_threats(self, findings: List[Dict]) -> List[Dict]:
        threats = []
        for signature in THREAT_DATABASE:
            for finding in findings:
                if any(isinstance(v, str) and re.search(signature.pattern, v, re.IGNORECASE)
                       for v in finding.values()):
                    threats.append({'threat_id': signature.id, 'name': signature.name,
                                    'severity': signature.severity,
                                    'remediation': signature.remediation,
                                    'detected_at': datetime.now().isoformat()})
                    break
        return threats

    async def run(self):
        await self.sio.connect(self.server_url, auth={'token': self.token}, wait_timeout=10)
        loops = [asyncio.create_task(self._heartbeat_loop()),
                 asyncio.create_task(self._task_processor_loop())]
        try:
            await self.done.wait()
        finally:
            for loop in loops:
                loop.cancel()
            await self.sio.disconnect()
        return self.report


async def main(url: str, token: str) -> int:
    agent = AutonomousScanningAgent(f"scanner_{uuid.uuid4().hex[:8]}", url, token)
    report = await agent.run()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == '__main__':
    logging.basicConfig(level=logging.WARNING)
    try:
        code = asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=30))
    except Exception as e:
        print(f'agent failed: {e!r}', file=sys.stderr)
        code = 1
    sys.exit(code)
